package main

import (
	"testing"
	"time"
)

// TestOp2TinyTimeoutWaitsForever: -w (flock's spelling of --timeout)
// takes seconds; a positive value below a nanosecond, such as
// -w 0.0000000001, is rounded to 0 without a word, and 0 means "wait as
// long as it takes": run waits for a held lock forever instead of giving
// up (124) as --timeout promises ("give up waiting for the lock after
// this long"). flock -w 0.0000000001 (util-linux 2.38) gives up at once,
// as does flock -w 0, which distlock also turns into an endless wait
// though docs/cli.md says flock users' -w works.
func TestOp2TinyTimeoutWaitsForever(t *testing.T) {
	_, nodes := startMasters(t, 3)
	hold(t, nodes, "busy")
	for _, w := range []string{"0.0000000001", "0.1ns"} {
		cmd := distlockCmd(t, nodes, "run", "-w", w, "busy", "--", "true")
		_, _, wait := background(t, cmd)
		done := make(chan int, 1)
		go func() { done <- wait() }()
		select {
		case code := <-done:
			if code != 124 {
				t.Errorf("-w %s: exit %d; want 124 (not acquired within --timeout)", w, code)
			}
		case <-time.After(3 * time.Second):
			t.Errorf("-w %s: still waiting for the held lock after 3s; a positive --timeout rounded to 0 waits forever", w)
		}
	}
}
