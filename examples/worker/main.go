// Command worker shows goroutines that do work only while a lock is held:
// each worker selects on the lease's Done channel and stops the moment the
// lease ends, whether it was released or lost.
//
// It takes the lock "examples/worker", starts three workers that each
// process an "item" on every tick, releases the lock after -hold, waits for
// the workers to stop and prints a summary:
//
//	go run ./examples/worker
//	go run ./examples/worker -nodes redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0,redis://10.0.0.3:6379/0 -hold 5s
//
// When -nodes is not given, the DISTLOCK_NODES environment variable is
// used, in the same comma-separated form; when that is empty too, the
// default node redis://127.0.0.1:6379/0.
//
// Expected output (the order of the workers' lines varies):
//
//	acquired examples/worker with fencing token 64, TTL 2s
//	worker 1: item 1 done
//	worker 3: item 1 done
//	worker 2: item 1 done
//	...
//	releasing after 1s
//	worker 2: lease released (distlock: lease released), stopping
//	worker 1: lease released (distlock: lease released), stopping
//	worker 3: lease released (distlock: lease released), stopping
//	summary: 3 workers processed 12 items (worker 1: 4, worker 2: 4, worker 3: 4); lease released
//
// If the lease is lost instead (a majority of masters unreachable for
// longer than the TTL), every worker prints "lease lost (...), stopping"
// before any other client could take the lock, and the program exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/distlock/distlock"
)

// lockName is the lock this program takes. In Redis it is the key
// "distlock:examples/worker" (distlock.DefaultKeyPrefix + lockName).
const lockName = "examples/worker"

// options sets the program's pace, and hooks through which a test can see
// what happened and when. Zero fields take the defaults below; nil hooks
// are not called.
type options struct {
	TTL      time.Duration // lease TTL
	Hold     time.Duration // how long to hold the lock before releasing it
	Workers  int           // worker goroutines
	Interval time.Duration // one item per worker per Interval
	Work     time.Duration // how long one item takes

	// OnAcquired is called once the lease is held, before the workers start.
	OnAcquired func(l *distlock.Lease)
	// OnItem is called when worker starts item. at was read before the
	// worker checked that the lease was still held, so the lease had not
	// ended at that instant.
	OnItem func(worker, item int, at time.Time)
	// OnStop is called when worker stops: err is why (the lease's Err, or
	// the context's cause), at is when the worker saw it.
	OnStop func(worker int, err error, at time.Time)
	// OnLeaseEnd is called by a goroutine that waits on the lease's Done,
	// with the time read just after Done was seen closed.
	OnLeaseEnd func(err error, at time.Time)
}

var defaults = options{
	TTL:      2 * time.Second,
	Hold:     time.Second,
	Workers:  3,
	Interval: 250 * time.Millisecond,
	Work:     20 * time.Millisecond,
}

func main() {
	nodes := flag.String("nodes", os.Getenv("DISTLOCK_NODES"),
		"comma-separated Redis masters, e.g. redis://host:6379/0 (default: $DISTLOCK_NODES, else "+distlock.DefaultNode+")")
	opts := defaults
	flag.DurationVar(&opts.Hold, "hold", defaults.Hold, "how long to hold the lock before releasing it")
	flag.DurationVar(&opts.TTL, "ttl", defaults.TTL, "lease TTL")
	flag.IntVar(&opts.Workers, "workers", defaults.Workers, "worker goroutines")
	flag.DurationVar(&opts.Interval, "interval", defaults.Interval, "time between two items of one worker")
	flag.Parse()

	// Ctrl-C cancels ctx: the workers stop, and the lease is released on
	// the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if err := run(ctx, splitNodes(*nodes), os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run takes the lock, lets opts.Workers goroutines work while it is held,
// releases it after opts.Hold and prints a summary once every worker has
// stopped. It returns an error wrapping distlock.ErrLeaseLost if the lease
// was lost before the release.
func run(ctx context.Context, nodes []string, out io.Writer, opts options) error {
	opts = withDefaults(opts)
	out = &syncWriter{w: out} // the workers print concurrently

	client, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		return err
	}
	// Close releases a lease still held, e.g. when we return early.
	defer client.Close()

	acquireCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lease, err := client.Acquire(acquireCtx, lockName, distlock.WithTTL(opts.TTL))
	if err != nil {
		return fmt.Errorf("acquire %s: %w", lockName, err)
	}
	fmt.Fprintf(out, "acquired %s with fencing token %d, TTL %v\n", lease.Name(), lease.Token(), lease.TTL())
	if opts.OnAcquired != nil {
		opts.OnAcquired(lease)
	}

	var wg sync.WaitGroup
	if opts.OnLeaseEnd != nil {
		wg.Go(func() {
			<-lease.Done()
			opts.OnLeaseEnd(lease.Err(), time.Now())
		})
	}

	// workCtx is for work that takes a context: it is cancelled the moment
	// the lease ends, with the lease's Err as its cause.
	workCtx, cancelWork := lease.Context(ctx)
	defer cancelWork()

	counts := make([]int, opts.Workers)
	for w := range opts.Workers {
		wg.Go(func() {
			counts[w] = work(workCtx, lease, w+1, out, opts)
		})
	}

	// Hold the lock for a while, unless it is lost first or we are
	// interrupted.
	var runErr error
	select {
	case <-time.After(opts.Hold):
		fmt.Fprintf(out, "releasing after %v\n", opts.Hold)
		// Release closes Done before it sends the deletes, so the workers
		// stop before any other client can take the lock.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		runErr = lease.Release(rctx)
		rcancel()
	case <-lease.Done():
		runErr = lease.Err()
	case <-ctx.Done():
		runErr = ctx.Err() // the deferred Close releases the lease
	}
	wg.Wait()

	total := 0
	per := make([]string, len(counts))
	for i, n := range counts {
		total += n
		per[i] = fmt.Sprintf("worker %d: %d", i+1, n)
	}
	fmt.Fprintf(out, "summary: %d workers processed %d items (%s); %s\n",
		opts.Workers, total, strings.Join(per, ", "), describe(lease.Err()))
	return runErr
}

// work is one worker: it processes an item on every tick while the lease
// is held and returns how many items it finished.
func work(ctx context.Context, lease *distlock.Lease, w int, out io.Writer, opts options) (done int) {
	stop := func(err error) {
		at := time.Now()
		fmt.Fprintf(out, "worker %d: %s (%v), stopping\n", w, describe(err), err)
		if opts.OnStop != nil {
			opts.OnStop(w, err, at)
		}
	}

	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	for item := 1; ; item++ {
		select {
		case <-lease.Done():
			stop(lease.Err())
			return done
		case <-ctx.Done(): // interrupted (ctx ends with the lease too, but Done says it first)
			stop(context.Cause(ctx))
			return done
		case <-tick.C:
		}

		// select picks at random among the cases that are ready: the tick
		// may have won although Done had closed too. Err checks the lease's
		// validity itself, even before its timer has fired, so check again
		// right before starting the item.
		at := time.Now()
		if err := lease.Err(); err != nil {
			stop(err)
			return done
		}
		if opts.OnItem != nil {
			opts.OnItem(w, item, at)
		}

		// The item's work takes a context: the lease's, so that it is
		// abandoned the moment the lease ends. (A write to storage would
		// also carry lease.Token(); see examples/fencing.)
		if err := process(ctx, opts.Work); err != nil {
			fmt.Fprintf(out, "worker %d: item %d abandoned: %v\n", w, item, err)
			stop(err)
			return done
		}
		done++
		fmt.Fprintf(out, "worker %d: item %d done\n", w, item)
	}
}

// process stands for real work on one item: it takes d, or returns the
// context's cause as soon as ctx ends.
func process(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// describe says how a lease ended.
func describe(err error) string {
	switch {
	case err == nil:
		return "lease still held"
	case errors.Is(err, distlock.ErrLeaseLost):
		return "lease lost"
	case errors.Is(err, distlock.ErrReleased):
		return "lease released"
	default:
		return "interrupted"
	}
}

func withDefaults(o options) options {
	if o.TTL <= 0 {
		o.TTL = defaults.TTL
	}
	if o.Hold <= 0 {
		o.Hold = defaults.Hold
	}
	if o.Workers <= 0 {
		o.Workers = defaults.Workers
	}
	if o.Interval <= 0 {
		o.Interval = defaults.Interval
	}
	if o.Work <= 0 {
		o.Work = defaults.Work
	}
	return o
}

// syncWriter serializes writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// splitNodes turns "a, b,c" into ["a" "b" "c"], and "" into nil (which
// distlock.Config reads as the default node).
func splitNodes(s string) []string {
	var nodes []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			nodes = append(nodes, n)
		}
	}
	return nodes
}
