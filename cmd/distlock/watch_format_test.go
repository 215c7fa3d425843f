package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// TestFormatEventOneLine: watch prints one line per event, whatever the
// lock's name holds. A name with a line break printed raw made a second
// line that read as an event of its own (operator review, 2026-12-07);
// such names are quoted, plain ones are not. An event after a lost
// watch connection says so (unseen), as --json does.
func TestFormatEventOneLine(t *testing.T) {
	at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ name, want string }{
		{"jobs/nightly", " jobs/nightly acquired "},
		{"evil\n2026-12-07T00:00:00.000Z fake released", ` "evil\n2026-12-07T00:00:00.000Z fake released" acquired `},
		{"two words", ` "two words" acquired `},
		{"say \"hi\"", ` "say \"hi\"" acquired `},
		{"bell\a", ` "bell\a" acquired `},
	} {
		line := formatEvent(distlock.Event{Name: tc.name, Type: distlock.EventAcquired, Time: at, Masters: 3}, 3)
		if strings.Contains(line, "\n") || !strings.Contains(line, tc.want) {
			t.Errorf("name %q: got %q; want one line with %q", tc.name, line, tc.want)
		}
	}
	line := formatEvent(distlock.Event{Name: "n", Type: distlock.EventReleased, Time: at, Masters: 2, Unseen: true}, 3)
	if !strings.HasSuffix(line, " unseen") {
		t.Errorf("an Unseen event: got %q; want it marked unseen", line)
	}
}

// TestWatchConfigRefusedNamesFlag: masters that refuse CONFIG (renamed
// away, as managed services do) make watch exit 123 with one line that
// names the masters and the CLI's flag, --skip-notify-config, where it
// repeated the library's "set Config.SkipNotifyConfig" once per master
// (operator review, 2026-12-07). With the flag it watches.
func TestWatchConfigRefusedNamesFlag(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{Args: []string{"--rename-command", "CONFIG", ""}})
	nodes := redistest.URLs(servers)
	r := run(t, nodes, "watch", "--timeout", "2s", "refused")
	if r.code != 123 {
		t.Errorf("exit %d; want 123\n%s", r.code, r.stderr)
	}
	want := fmt.Sprintf("masters 0 (%s), 1 (%s) and 2 (%s) refuse CONFIG", servers[0].URL(), servers[1].URL(), servers[2].URL())
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "--skip-notify-config") || strings.Contains(r.stderr, "Config.SkipNotifyConfig") {
		t.Errorf("stderr %q; want %q and --skip-notify-config, not Config.SkipNotifyConfig", r.stderr, want)
	}
	if n := strings.Count(r.stderr, "\n"); n != 1 {
		t.Errorf("stderr has %d lines; want one:\n%s", n, r.stderr)
	}
	// The start line quotes a name as the events do.
	r = run(t, nodes, "watch", "--skip-notify-config", "--timeout", "1s", "two words")
	if r.code != 0 || !strings.Contains(r.stderr, `watching "two words" on 3 masters`) {
		t.Errorf("with --skip-notify-config: exit %d; want 0 and watching \"two words\"\n%s", r.code, r.stderr)
	}
}
