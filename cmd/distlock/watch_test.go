package main

import (
	"encoding/json"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestWatch runs `distlock watch` while another `distlock run` takes and
// releases the lock: it prints the acquire and the release, and exits 0
// on SIGINT.
func TestWatch(t *testing.T) {
	_, nodes := startMasters(t, 3)
	cmd := distlockCmd(t, nodes, "watch", "watched", "other")
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stderr, "watching watched, other on 3 masters")

	run(t, nodes, "run", "watched", "--", "true").want(t, 0)
	line := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\S* watched (acquired|released) masters=[23]/3$`)
	for _, typ := range []string{"acquired", "released"} {
		got := waitLine(t, stdout, "watched "+typ)
		if !line.MatchString(got) {
			t.Errorf("event line %q; want TIME NAME TYPE masters=N/3", got)
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	if code := wait(); code != 0 {
		t.Errorf("exit status after SIGINT %d; want 0", code)
	}
}

// TestWatchJSON: --json prints one object per line; a lock already held
// when watching begins comes first, marked initial; --timeout ends it.
func TestWatchJSON(t *testing.T) {
	_, nodes := startMasters(t, 3)
	l := hold(t, nodes, "j")
	cmd := distlockCmd(t, nodes, "watch", "--json", "--timeout", "20s", "j")
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stderr, "watching j")
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	var events []watchEvent
	for len(events) < 2 {
		var ev watchEvent
		if err := json.Unmarshal([]byte(waitLine(t, stdout, `"name":"j"`)), &ev); err != nil {
			t.Fatalf("event line is not JSON: %v", err)
		}
		events = append(events, ev)
	}
	if e := events[0]; e.Type != "acquired" || !e.Initial || e.Masters < 2 || e.Of != 3 || time.Since(e.Time) > time.Minute {
		t.Errorf("first event %+v; want acquired, initial, 2 or 3 of 3 masters, now", e)
	}
	if e := events[1]; e.Type != "released" || e.Initial || e.Masters < 2 {
		t.Errorf("second event %+v; want released by at least 2 masters", e)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := wait(); code != 0 {
		t.Errorf("exit status after SIGTERM %d; want 0", code)
	}
}
