package main

import (
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
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
