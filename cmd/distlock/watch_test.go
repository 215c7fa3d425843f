package main

import (
	"encoding/json"
	"regexp"
	"strings"
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
	// The owner is run's default: its host name and process id.
	line := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\S* watched (acquired|released) masters=[23]/3 owner="[^"]+:\d+"$`)
	for _, typ := range []string{"acquired", "released"} {
		got := waitLine(t, stdout, "watched "+typ)
		if !line.MatchString(got) {
			t.Errorf("event line %q; want TIME NAME TYPE masters=N/3 owner=\"HOST:PID\"", got)
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

// TestWatchDegraded: watch says when fewer than a majority of masters
// answer, and when enough do again; --json emits both as lines.
func TestWatchDegraded(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	cmd := distlockCmd(t, nodes, "watch", "--json", "--timeout", "30s", "deg")
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stderr, "watching deg")
	for _, s := range servers[1:] {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	var ev reachEvent
	if err := json.Unmarshal([]byte(waitLine(t, stdout, `"type":"degraded"`)), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Masters != 1 || ev.Of != 3 || ev.Needed != 2 {
		t.Errorf("degraded: %+v; want 1 of 3 masters, 2 needed", ev)
	}
	for _, s := range servers[1:] {
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	if err := json.Unmarshal([]byte(waitLine(t, stdout, `"type":"recovered"`)), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Masters < 2 || ev.Of != 3 {
		t.Errorf("recovered: %+v; want at least 2 of 3 masters", ev)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if code := wait(); code != 0 {
		t.Errorf("exit status %d; want 0", code)
	}
}

// TestWatchSkipNotifyConfig: with --skip-notify-config, watch leaves the
// masters' notify-keyspace-events as they are, and still sees distlock's
// own acquire and release.
func TestWatchSkipNotifyConfig(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	cmd := distlockCmd(t, nodes, "watch", "--skip-notify-config", "skip")
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stderr, "watching skip")
	run(t, nodes, "run", "skip", "--", "true").want(t, 0)
	waitLine(t, stdout, "skip acquired")
	waitLine(t, stdout, "skip released")
	for i, s := range servers {
		got, err := s.Do("CONFIG", "GET", "notify-keyspace-events")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(got, "K") {
			t.Errorf("master %d: notify-keyspace-events %q; want it left unset", i, got)
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	wait()
}
