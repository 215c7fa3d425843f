// Command demo shows Redlock at work, as `make demo` runs it: four workers,
// each with its own distlock.Client as four separate processes would have,
// take turns on one lock over three Redis masters. About two seconds in,
// master 0 is killed; the remaining majority of 2/3 keeps the lock working.
//
//	go run ./examples/demo
//
// The demo starts its own redis-server processes on free loopback ports
// (redis-server must be installed) and stops them when it ends, also on
// Ctrl-C. It checks what it shows: every fencing token is greater than the
// one printed before it, whichever worker drew it, and no two workers ever
// held the lock at the same time. It exits non-zero when a check fails.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// lockName is the one lock all workers want.
const lockName = "demo/report"

// options sets the demo's size and pace; the test runs a shorter variant.
type options struct {
	masters   int           // Redis masters to start
	workers   int           // workers, each with its own Client
	duration  time.Duration // how long the workers run
	killAfter time.Duration // when master 0 is killed
	hold      time.Duration // how long a worker holds the lock each time
	pause     time.Duration // how long a worker rests between turns
}

var defaults = options{
	masters:   3,
	workers:   4,
	duration:  5 * time.Second,
	killAfter: 2 * time.Second,
	hold:      150 * time.Millisecond,
	pause:     50 * time.Millisecond,
}

func main() {
	// Ctrl-C cancels ctx; run then winds down and stops every master.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run runs the demo at its normal size and pace.
func run(ctx context.Context, out io.Writer) error {
	return runWith(ctx, out, defaults)
}

func runWith(ctx context.Context, out io.Writer, opts options) error {
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
	for i := range opts.masters {
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
	for range opts.workers {
		c, err := distlock.New(distlock.Config{Nodes: urls})
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}

	d := &demo{out: out, opts: opts}
	d.mastersUp.Store(int32(len(masters)))
	d.printf("%d workers, %d masters: %v", opts.workers, opts.masters, urls)

	workCtx, cancel := context.WithTimeout(ctx, opts.duration)
	defer cancel()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { d.worker(workCtx, i+1, c) })
	}

	// Meanwhile, crash master 0 as a power loss would.
	select {
	case <-time.After(opts.killAfter):
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
	opts      options
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
		lease, err := c.Acquire(acquireCtx, lockName)
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
		case <-time.After(d.opts.hold):
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
		case <-time.After(d.opts.pause):
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
		now(), worker, token, d.mastersUp.Load(), d.opts.masters, problems)
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
		errs = append(errs, fmt.Errorf("interrupted: %w", context.Cause(ctx)))
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
