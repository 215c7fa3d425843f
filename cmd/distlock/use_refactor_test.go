package main

import (
	"strings"
	"testing"
)

// TestUseWatchFlagAfterName: found by the use tester (after the watch
// refactor; the behaviour predates it). An operator types the flag after
// the name, as `distlock watch nightly --json`. status and hold refuse
// that ("one lock NAME at a time; got [x --json]", exit 125); watch takes
// "--json" as a second lock NAME, prints "watching x, --json" and text
// events, and exits 0: the flag is silently ignored and a lock nobody
// uses is watched.
//
// Expected: exit 125 with a usage error naming the flag (or the flag
// honoured). Proposed fix: in watchOptions.check refuse a NAME that
// starts with '-' ("flags go before the lock NAMEs").
func TestUseWatchFlagAfterName(t *testing.T) {
	_, nodes := startMasters(t, 3)
	r := run(t, nodes, "watch", "--timeout", "1", "x", "--json")
	if r.code != exitUsage {
		t.Errorf("watch --timeout 1 x --json: exit %d; want %d (a usage error)\nstdout:\n%s\nstderr:\n%s", r.code, exitUsage, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "watching x, --json") {
		t.Errorf("watch took the flag --json for a lock NAME:\n%s", r.stderr)
	}
}

// TestUseStatusEmptyValueNotFree: found by the use tester. Another
// program SET the lock key to "" on 2 of 3 masters. run -n says the lock
// "is held by another holder" (exit 124) and watch reports it "acquired
// masters=2/3", but status says "free (3 of 3 masters agree)" and exits
// 0: a script that checks `distlock status NAME` before acting is told
// the lock is free when no one can take it.
//
// Expected: status not "free" / not exit 0 (held, exit 1, as for any
// other foreign value, or cannot tell, exit 2). Proposed fix: in status
// take a master as holding the lock when the key exists, whatever its
// value (the library's Inspect: Held from the key's existence, not from
// Value != "").
func TestUseStatusEmptyValueNotFree(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	for _, s := range servers[:2] {
		if _, err := s.Do("SET", "distlock:ev", ""); err != nil {
			t.Fatal(err)
		}
	}
	rr := run(t, nodes, "run", "-n", "ev", "--", "true")
	rr.want(t, exitNotAcquired)
	r := run(t, nodes, "status", "ev")
	if r.code == exitOK || strings.Contains(r.stdout, ": free") {
		t.Errorf("status: exit %d, says the lock is free, while run -n could not take it (%q):\n%s", r.code, strings.TrimSpace(rr.stderr), r.stdout)
	}
}
