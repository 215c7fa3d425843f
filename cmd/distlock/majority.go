package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock"
)

// reach is how many masters answer, of how many, how many of those
// answered with an error (refused: WRONGTYPE, NOPERM, ...), and how many
// make a majority. unheard of the up masters were not waited for (an
// acquire decides before every master has answered): reachable as far as
// anyone knows, but they did not answer.
type reach struct {
	up, refused, total, quorum, unheard int
	// warning says why no acquire can win whatever the lock's state, from
	// the masters' fence counters (fenceWarning); "" when none.
	warning string
}

func (r reach) short() bool { return r.up-r.refused < r.quorum }

func (r reach) String() string {
	if r.refused > 0 {
		// They answer: no network fault to look for
		// (TestUseWrongTypeNotUnreachable).
		s := fmt.Sprintf("%d of %d masters answered, %d of them with an error, %d needed", r.up-r.unheard, r.total, r.refused, r.quorum)
		if r.unheard > 0 {
			s += fmt.Sprintf(" (%d not waited for)", r.unheard)
		}
		return s
	}
	return fmt.Sprintf("%d of %d masters reachable, %d needed", r.up, r.total, r.quorum)
}

// add counts one master's answer, err (nil: it answered).
func (r *reach) add(err error) {
	switch {
	case err == nil:
		r.up++
	case refused(err):
		r.up++
		r.refused++
	}
}

// refused reports whether err is a master's error reply, or an answer the
// library refused (a fence counter out of range): the master is reachable,
// and said no.
func refused(err error) bool {
	var re *rueidis.RedisError
	var ce *distlock.CounterError // a fence counter no token can carry
	return errors.As(err, &re) || errors.As(err, &ce)
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
		r := reach{total: len(st.Masters), quorum: st.Quorum, warning: fenceWarning(st)}
		for _, m := range st.Masters {
			r.add(m.Err)
		}
		report(r)
		t.Reset(interval)
	}
}

// quorumReach returns how many masters answered an acquire that failed
// with err, when err says (a *distlock.QuorumError). A nil entry in its
// Errs is a master that granted, or held another's lease, or whose answer
// the acquire did not wait for: those it did not count are the last.
func quorumReach(err error) (reach, bool) {
	var qe *distlock.QuorumError
	if !errors.As(err, &qe) {
		return reach{}, false
	}
	r := reach{total: len(qe.Errs), quorum: qe.Needed}
	heard := qe.Granted + qe.Held
	for _, e := range qe.Errs {
		r.add(e)
		if e != nil {
			heard++
		}
	}
	r.unheard = max(r.total-heard, 0)
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
