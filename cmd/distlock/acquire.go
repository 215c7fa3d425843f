package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/quorum"
)

// acquire takes the lock as the flags say. Without a lease it returns
// the exit status, having said why on stderr.
func (o *runOptions) acquire(c *distlock.Client, sigs <-chan os.Signal, stderr io.Writer) (*distlock.Lease, int) {
	ctx := context.Background()
	if o.timeout > 0 {
		// Connecting may have used up --timeout: one attempt still gets
		// its answers, so that the outcome says whether the lock is held
		// (124) or too few masters answer (123), with their errors.
		deadline := o.deadline
		if least := time.Now().Add(attemptLeast); deadline.Before(least) {
			deadline = least
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	// While it waits, say so when too few masters answer, and again every
	// few seconds while that lasts: a lock that cannot be taken is not
	// waited for silently.
	stopReport := func() {}
	if !o.try {
		stopReport = o.reportReach(ctx, c, stderr)
	}
	// A signal while waiting ends the wait.
	var lease *distlock.Lease
	var err error
	got := untilSignal(ctx, sigs, func(ctx context.Context) {
		if o.try {
			lease, err = c.TryAcquire(ctx, o.name, o.lockOptions()...)
		} else {
			lease, err = c.Acquire(ctx, o.name, o.lockOptions()...)
		}
	})
	stopReport()
	r, known := quorumReach(err)
	switch {
	case err == nil:
		return lease, 0
	case got != nil:
		fmt.Fprintf(stderr, "distlock %s: %v while waiting for lock %q%s\n", o.cmd, got, o.name, o.notRun())
		return nil, exitSignal + signalNumber(got)
	case errors.Is(err, distlock.ErrLocked):
		switch {
		case o.quiet:
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Fprintf(stderr, "distlock %s: lock %q not acquired within --timeout %v: held by another holder%s\n", o.cmd, o.name, o.timeout, o.notRun())
		default:
			fmt.Fprintf(stderr, "distlock %s: lock %q is held by another holder%s\n", o.cmd, o.name, o.notRun())
		}
		return nil, o.notAcquired
	case known && r.short():
		// The masters, not the lock, are what is missing: 123, --timeout
		// or not.
		within := ""
		if errors.Is(err, context.DeadlineExceeded) {
			within = fmt.Sprintf(" within --timeout %v", o.timeout)
		}
		fmt.Fprintf(stderr, "distlock %s: lock %q not acquired%s: %v%s (%s)\n", o.cmd, o.name, within, r, o.notRun(), masterErrors(err))
		return nil, exitUnreachable
	case errors.Is(err, context.DeadlineExceeded):
		if !o.quiet {
			fmt.Fprintf(stderr, "distlock %s: lock %q not acquired within --timeout %v%s\n", o.cmd, o.name, o.timeout, o.notRun())
		}
		return nil, o.notAcquired
	default:
		fmt.Fprintf(stderr, "distlock %s: lock %q not acquired%s: %s\n", o.cmd, o.name, o.notRun(), oneLine(err))
		return nil, exitUnreachable
	}
}

// notRun is what a message of run that ends it adds: that COMMAND did
// not run.
func (o *runOptions) notRun() string {
	if len(o.argv) == 0 {
		return ""
	}
	return "; " + o.argv[0] + " not run"
}

// reportReach says on stderr, from a moment after it is called and every
// few seconds, how many masters answer while too few do, until the
// returned stop is called; stop waits for it to end.
func (o *runOptions) reportReach(ctx context.Context, c *distlock.Client, stderr io.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		wasShort := false
		pollReach(ctx, c, o.name, reachFirst, reachInterval, func(r reach) {
			switch {
			case r.short():
				fmt.Fprintf(stderr, "distlock %s: %v; waiting for lock %q\n", o.cmd, r, o.name)
			case wasShort:
				fmt.Fprintf(stderr, "distlock %s: %v again; waiting for lock %q\n", o.cmd, r, o.name)
			}
			wasShort = r.short()
			if r.warning != "" {
				// The masters answer, and refuse every acquire: without
				// this a waiting run or hold said nothing until its
				// --timeout, or ever (TestWaitSaysCounterUnreadable).
				fmt.Fprintf(stderr, "distlock %s: warning: %s (distlock status %s names them); waiting for lock %q\n", o.cmd, r.warning, eventName(o.name), o.name)
			}
		})
	}()
	return func() {
		cancel()
		<-done
	}
}

// While run waits, the masters are counted first after reachFirst (most
// locks are taken by then, and cost no count) and then every
// reachInterval.
const (
	reachFirst    = 200 * time.Millisecond
	reachInterval = 3 * time.Second
)

// connect makes the Client that run and hold take the lock with. The
// wait that --timeout bounds starts here: masters slow to connect (paused,
// unroutable: New waits up to its dial timeout for them) count against it,
// as flock -w counts from the start. It gives up connectGrace after
// --timeout (a majority not connected by then), and acquire then makes one attempt however little is left:
// so a short --timeout with a paused minority still takes a free lock,
// and one used up by connecting still says held (124) or masters
// unreachable (123). A signal while connecting ends it too, with a
// message. Without a Client it returns the exit status, having said why
// on stderr.
func (o *runOptions) connect(f *flags, cfg distlock.Config, sigs <-chan os.Signal, stderr io.Writer) (*distlock.Client, int) {
	d := f.connectAsync(cfg)
	var timeout <-chan time.Time
	if o.timeout > 0 {
		o.deadline = time.Now().Add(o.timeout)
		t := time.NewTimer(o.timeout + connectGrace)
		defer t.Stop()
		timeout = t.C
	}
	// Connecting takes long only when too few masters answer (New returns
	// connectGrace after a majority has): say so, as the wait does
	// (reportReach), first a moment in and then every reachInterval.
	var sayTimer *time.Timer
	var say <-chan time.Time
	if !o.try {
		sayTimer = time.NewTimer(reachFirst + newGrace)
		defer sayTimer.Stop()
		say = sayTimer.C
	}
	need := quorum.Majority(len(cfg.Nodes))
	for {
		select {
		case m := <-d.done:
			if m.err != nil {
				return nil, f.fail(stderr, m.err)
			}
			return m.c, 0
		case <-say:
			fmt.Fprintf(stderr, "distlock %s: still connecting: fewer than %d of %d masters reachable so far; waiting for lock %q\n", o.cmd, need, len(cfg.Nodes), o.name)
			sayTimer.Reset(reachInterval)
		case sig := <-sigs:
			d.abandon()
			fmt.Fprintf(stderr, "distlock %s: %v while connecting to the masters; lock %q not taken%s\n", o.cmd, sig, o.name, o.notRun())
			return nil, exitSignal + signalNumber(sig)
		case <-timeout:
			d.abandon()
			fmt.Fprintf(stderr, "distlock %s: lock %q not acquired within --timeout %v: still connecting to the masters (%d of %d needed)%s\n", o.cmd, o.name, o.timeout, need, len(cfg.Nodes), o.notRun())
			return nil, exitUnreachable
		}
	}
}

// connectGrace is how long past --timeout connect waits for New: a
// majority of masters gets majorityGrace past --timeout to connect, and
// New then waits up to newGrace (the library's own) for the rest, even
// with --timeout used up: a lock a majority can grant is worth that
// overrun (TestAdvReadRunShortTimeoutOneMasterPaused, with -w 0.1 and
// 0.001). attemptLeast is the least time
// acquire gives one attempt after connecting: the per-master timeout and
// a margin (TestAdvReadAcquireDeadlinePassedAtConnect).
const (
	majorityGrace = 250 * time.Millisecond
	newGrace      = 250 * time.Millisecond // distlock's newGrace: New's wait for the last masters
	connectGrace  = majorityGrace + newGrace
	attemptLeast  = distlock.DefaultNodeTimeout + 50*time.Millisecond
)
