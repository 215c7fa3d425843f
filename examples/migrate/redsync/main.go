// Command redsync is the "after" program of docs/migrate-redsync.md: a job
// that wrote a report under a go-redsync/redsync Mutex, moved to distlock.
// The "before" program is in the guide.
//
// What changed, line for line:
//   - redsync.New(pools...) with one redis.Pool per master became one
//     distlock.Client over the masters' URLs;
//   - rs.NewMutex(name, WithExpiry, WithTries) and mutex.LockContext became
//     Client.Acquire(ctx, name, WithTTL): a deadline on ctx replaces the
//     number of tries;
//   - the goroutine that called mutex.ExtendContext every few seconds is
//     gone: the lease renews itself, and Lease.Context is cancelled the
//     moment it is lost;
//   - mutex.UnlockContext's (bool, error) became Lease.Release's error;
//   - the report carries the lease's fencing token, which the storage
//     checks (redsync has none).
//
// Run it against the Redis on this machine (redis://127.0.0.1:6379/0):
//
//	go run ./examples/migrate/redsync
//
// or against several independent masters (use 3 or 5):
//
//	go run ./examples/migrate/redsync -nodes redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0,redis://10.0.0.3:6379/0
//
// When -nodes is not given, the DISTLOCK_NODES environment variable is used;
// when that is empty too, the default node redis://127.0.0.1:6379/0.
//
// Expected output:
//
//	report written under fencing token 1234
//	lock released
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
	"time"

	"github.com/distlock/distlock"
)

// lockName was the Mutex's name. redsync used it as the Redis key itself;
// distlock's key is distlock.DefaultKeyPrefix + lockName.
const lockName = "nightly-report"

func main() {
	nodes := flag.String("nodes", os.Getenv("DISTLOCK_NODES"),
		"comma-separated Redis masters, e.g. redis://host:6379/0 (default: $DISTLOCK_NODES, else "+distlock.DefaultNode+")")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, splitNodes(*nodes), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "redsync:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, nodes []string, out io.Writer) error {
	// Before: one redis.Pool per master, then redsync.New(pools...).
	client, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		return err
	}
	defer client.Close()

	// Before: rs.NewMutex(lockName, redsync.WithExpiry(30*time.Second),
	// redsync.WithTries(64)) and mutex.LockContext(ctx): up to 64 tries,
	// 50-250ms apart. Now the wait is bounded by a deadline, and the
	// waiter is woken when the lock is released or expires.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lease, err := client.Acquire(waitCtx, lockName, distlock.WithTTL(30*time.Second))
	switch {
	case errors.Is(err, distlock.ErrLocked): // before: redsync.ErrFailed, *redsync.ErrTaken
		return fmt.Errorf("another process held %s for 10s: %w", lockName, err)
	case err != nil: // e.g. distlock.ErrNoQuorum: too few masters answered
		return err
	}

	// Before: a goroutine calling mutex.ExtendContext every 10s, and a
	// check of mutex.Until() before each write. Now: a context that is
	// cancelled the moment the lease is lost.
	workCtx, stopWork := lease.Context(ctx)
	defer stopWork()
	if err := writeReport(workCtx, lease.Token(), out); err != nil {
		lease.Release(context.Background())
		return err
	}

	// Before: if ok, err := mutex.UnlockContext(ctx); !ok || err != nil.
	// Release of a lease that was lost reports ErrLeaseLost (before:
	// redsync.ErrLockAlreadyExpired).
	if err := lease.Release(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "lock released")
	return nil
}

// writeReport stands for the work the lock guards. The fencing token goes
// with the write: storage that keeps the largest token it has accepted
// refuses a smaller one, which is what protects it from a holder that was
// paused past its lease.
func writeReport(ctx context.Context, token uint64, out io.Writer) error {
	select {
	case <-time.After(100 * time.Millisecond):
	case <-ctx.Done():
		return context.Cause(ctx) // wraps distlock.ErrLeaseLost if the lease was lost
	}
	fmt.Fprintf(out, "report written under fencing token %d\n", token)
	return nil
}

// splitNodes turns "a, b,c" into ["a" "b" "c"], and "" into nil (the
// default node).
func splitNodes(s string) []string {
	var nodes []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			nodes = append(nodes, n)
		}
	}
	return nodes
}
