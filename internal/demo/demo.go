// Package demo is the demonstration that `make demo` (examples/demo) and
// `distlock demo` (cmd/distlock) run: workers, each with its own
// distlock.Client as separate processes would have, take turns on one lock
// over several Redis masters; midway, master 0 is killed, and the remaining
// majority keeps the lock working.
//
// Run starts its own redis-server processes (from PATH) on free loopback
// ports, each in a temporary directory, and stops them and removes the
// directories when it returns, also when ctx is cancelled (Ctrl-C). It
// checks what it shows: every fencing token is greater than the one printed
// before it, whichever worker drew it, and no two workers ever held the
// lock at the same time.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// LockName is the one lock all workers want.
const LockName = "demo/report"

// Options sets the demo's size and pace.
type Options struct {
	Masters   int           // Redis masters to start
	Workers   int           // workers, each with its own Client
	Duration  time.Duration // how long the workers run
	KillAfter time.Duration // when master 0 is killed; not at all if >= Duration
	Hold      time.Duration // how long a worker holds the lock each time
	Pause     time.Duration // how long a worker rests between turns
}

// Defaults are the options of `make demo` and `distlock demo`.
var Defaults = Options{
	Masters:   3,
	Workers:   4,
	Duration:  5 * time.Second,
	KillAfter: 2 * time.Second,
	Hold:      150 * time.Millisecond,
	Pause:     50 * time.Millisecond,
}

// ErrInterrupted is wrapped by the error Run returns when ctx ended
// before the demo did.
var ErrInterrupted = errors.New("interrupted")

// Check reports what is wrong with opts, or nil.
func (o Options) Check() error {
	switch {
	case o.Masters < 3 || o.Masters > distlock.MaxNodes:
		return fmt.Errorf("masters: %d; want 3 to %d (one is killed, and a majority must remain)", o.Masters, distlock.MaxNodes)
	case o.Workers < 1:
		return fmt.Errorf("workers: %d; want at least 1", o.Workers)
	case o.Duration <= 0:
		return fmt.Errorf("duration: %v; want more than 0", o.Duration)
	case o.KillAfter < 0 || o.Hold < 0 || o.Pause < 0:
		return errors.New("kill-after, hold and pause must not be negative")
	}
	return nil
}

// Run runs the demo, printing to out, and returns an error when a check
// failed, when a master could not be started (redis-server missing from
// PATH, say), or when ctx ended first (wrapping [ErrInterrupted]). Every
// master it started is stopped and its directory removed before it
// returns.
func Run(ctx context.Context, out io.Writer, opts Options) error {
	if err := opts.Check(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// Say plainly what is missing rather than failing in the middle.
	if _, err := redistest.LookPath(); err != nil {
		return err
	}

	// Start the masters: independent redis-server processes, each on a
	// free port of 127.0.0.1 with a temporary directory of its own.
	var masters []*redistest.Server
	defer func() {
		for _, m := range masters {
			m.Stop()
		}
	}()
	for i := range opts.Masters {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
		}
		m, err := redistest.Start(redistest.Options{})
		if err != nil {
			return fmt.Errorf("start master %d: %w", i, err)
		}
		masters = append(masters, m)
	}
	urls := redistest.URLs(masters)

	// One Client per worker, as if each worker were its own process.
	var clients []*distlock.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range opts.Workers {
		c, err := distlock.New(distlock.Config{Nodes: urls})
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}

	d := &demo{out: out, opts: opts}
	d.mastersUp.Store(int32(len(masters)))
	d.printf("%d workers, %d masters: %v", opts.Workers, opts.Masters, urls)

	workCtx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { d.worker(workCtx, i+1, c) })
	}

	// Meanwhile, crash master 0 as a power loss would.
	kill := time.NewTimer(opts.KillAfter)
	defer kill.Stop()
	select {
	case <-kill.C:
		if err := masters[0].Kill(); err != nil {
			d.printf("kill master 0: %v", err)
		} else {
			up := d.mastersUp.Add(-1)
			d.println(fmt.Sprintf("--- killing master 0 (%s): a majority of %d/%d remains ---",
				masters[0].Addr(), up, len(masters)))
			d.killed.Store(true)
		}
	case <-workCtx.Done():
	}
	wg.Wait()

	return d.summary(ctx)
}

// demo holds what the workers share: the output, and the checks.
type demo struct {
	out       io.Writer
	opts      Options
	mastersUp atomic.Int32
	killed    atomic.Bool

	mu            sync.Mutex // guards the output and everything below
	holders       int        // workers that hold the lock right now
	lastToken     uint64     // the last token printed
	acquisitions  int
	afterKill     int // acquisitions after master 0 was killed
	notIncreasing int // tokens not greater than the one before
	overlaps      int // acquisitions while another worker held the lock
	lost          int // leases lost while held
}

// worker takes the lock, holds it for a while, releases it, rests, and
// again, until ctx ends. It uses only distlock's public API.
func (d *demo) worker(ctx context.Context, id int, c *distlock.Client) {
	for ctx.Err() == nil {
		// Wait for the lock, but not forever: a real worker would
		// report that it could not get its turn.
		acquireCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		lease, err := c.Acquire(acquireCtx, LockName)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				d.printf("worker %d could not acquire: %v", id, err)
			}
			continue
		}
		d.acquired(id, lease.Token())

		// The work: hold the lock, unless the lease is lost meanwhile.
		select {
		case <-time.After(d.opts.Hold):
		case <-lease.Done():
			d.lostLease(id, lease.Err())
		case <-ctx.Done():
		}

		// Stop counting ourselves as the holder before the keys are
		// deleted: from then on another worker may rightly take the lock.
		d.releasing()
		// Release even when ctx has ended (Ctrl-C), so the lock is freed now.
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := lease.Release(releaseCtx); err != nil && !errors.Is(err, distlock.ErrLeaseLost) {
			d.printf("worker %d release: %v", id, err)
		}
		cancel()

		// Rest a little, so that the other workers get their turn.
		select {
		case <-time.After(d.opts.Pause):
		case <-ctx.Done():
		}
	}
}

// acquired records and prints one acquisition, checking it against the
// one before: its token must be greater, and no other worker may hold the
// lock. It prints while holding the mutex, so the printed order is the
// order in which the checks were made.
func (d *demo) acquired(worker int, token uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acquisitions++
	if d.killed.Load() {
		d.afterKill++
	}
	var problems string
	if token <= d.lastToken {
		d.notIncreasing++
		problems += fmt.Sprintf("  <-- NOT greater than the previous token %d", d.lastToken)
	}
	if d.holders > 0 {
		d.overlaps++
		problems += "  <-- OVERLAP: another worker still holds the lock"
	}
	d.holders++
	d.lastToken = token
	fmt.Fprintf(d.out, "%s worker %d acquired token %d (masters up: %d/%d)%s\n",
		now(), worker, token, d.mastersUp.Load(), d.opts.Masters, problems)
}

func (d *demo) releasing() {
	d.mu.Lock()
	d.holders--
	d.mu.Unlock()
}

func (d *demo) lostLease(worker int, err error) {
	d.mu.Lock()
	d.lost++
	d.mu.Unlock()
	d.printf("worker %d lost its lease, work stopped: %v", worker, err)
}

// summary prints the outcome and returns an error if a check failed.
func (d *demo) summary(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	increasing := "yes"
	if d.notIncreasing > 0 {
		increasing = fmt.Sprintf("NO (%d times)", d.notIncreasing)
	}
	fmt.Fprintf(d.out, "%d acquisitions, tokens strictly increasing: %s, overlapping holders: %d\n",
		d.acquisitions, increasing, d.overlaps)
	fmt.Fprintf(d.out, "%d acquisitions after master 0 was killed, leases lost: %d\n", d.afterKill, d.lost)

	var errs []error
	if d.notIncreasing > 0 {
		errs = append(errs, fmt.Errorf("%d fencing tokens were not greater than the one before", d.notIncreasing))
	}
	if d.overlaps > 0 {
		errs = append(errs, fmt.Errorf("%d times two workers held the lock at once", d.overlaps))
	}
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx)))
	} else {
		if d.acquisitions == 0 {
			errs = append(errs, errors.New("no worker ever acquired the lock"))
		}
		if d.killed.Load() && d.afterKill == 0 {
			errs = append(errs, errors.New("no worker acquired the lock after master 0 was killed"))
		}
	}
	return errors.Join(errs...)
}

func (d *demo) printf(format string, args ...any) {
	d.println(now() + " " + fmt.Sprintf(format, args...))
}

func (d *demo) println(line string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintln(d.out, line)
}

func now() string { return time.Now().Format("15:04:05.000") }
