package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOp2RunSilentWhileConnecting: docs/cli.md: with too few masters
// answering, run says "1 of 3 masters reachable, 2 needed" at once and
// every 3 s while it waits. With a majority paused, run says nothing
// while connecting: 2.2 s with the default dial timeout, and as long as
// the URLs' ?dial_timeout (6 s here) when they carry one, a wait without
// a word, which is what the message is for.
func TestOp2RunSilentWhileConnecting(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	for i, s := range servers[1:] {
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Resume() })
		nodes[i+1] += "?dial_timeout=6s"
	}
	cmd := distlockCmd(t, nodes, "run", "paused", "--", "true")
	_, stderr, wait := background(t, cmd)
	start := time.Now()
	said := make(chan time.Duration, 1)
	go func() {
		for l := range stderr {
			if strings.Contains(l, "masters reachable") {
				said <- time.Since(start)
				return
			}
		}
	}()
	select {
	case d := <-said:
		t.Logf("said after %v", d)
	case <-time.After(3 * time.Second):
		t.Errorf("run said nothing for 3s with 2 of 3 masters paused; docs/cli.md: \"1 of 3 masters reachable, 2 needed\" at once")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	wait()
}
