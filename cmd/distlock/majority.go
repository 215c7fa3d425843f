package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distlock/distlock"
)

// reach is how many masters answer, of how many, and how many make a
// majority.
type reach struct{ up, total, quorum int }

func (r reach) short() bool { return r.up < r.quorum }

func (r reach) String() string {
	return fmt.Sprintf("%d of %d masters reachable, %d needed", r.up, r.total, r.quorum)
}

// pollReach reads the lock name on every master (Client.Status) after
// first, then every interval, and calls report with how many answered,
// until ctx ends. A master that does not answer is given the Client's
// dial timeout. It returns when ctx ends.
func pollReach(ctx context.Context, c *distlock.Client, name string, first, interval time.Duration, report func(reach)) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := c.Status(ctx, name)
		if err != nil {
			return // ctx ended, or the Client closed
		}
		r := reach{total: len(st.Masters), quorum: st.Quorum}
		for _, m := range st.Masters {
			if m.Err == nil {
				r.up++
			}
		}
		report(r)
		t.Reset(interval)
	}
}

// quorumReach returns how many masters answered an operation that
// failed with err, when err says (a *distlock.QuorumError).
func quorumReach(err error) (reach, bool) {
	var qe *distlock.QuorumError
	if !errors.As(err, &qe) {
		return reach{}, false
	}
	r := reach{total: len(qe.Errs), quorum: qe.Needed}
	for _, e := range qe.Errs {
		if e == nil {
			r.up++
		}
	}
	return r, true
}

// closeSoon closes c, waiting for it at most a moment: Close waits for
// every master, including one that does not answer, and a command about
// to exit has nothing left for it to do (its lease was released; the
// kernel closes the connections).
func closeSoon(c *distlock.Client) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Close()
	}()
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
