// Command redislock is the "after" program of docs/migrate-redislock.md: a
// program that took a bsm/redislock lock, refreshed it from a watchdog
// goroutine and checked its TTL, moved to distlock. The "before" program
// is in the guide.
//
// What changed, line for line:
//   - redislock.New(redisClient) over one Redis became one distlock.Client
//     over one or more independent masters;
//   - Obtain with no options (one attempt) became TryAcquire; Obtain with a
//     RetryStrategy became Acquire with a deadline on ctx;
//   - ErrNotObtained became ErrLocked;
//   - the watchdog goroutine calling lock.Refresh every TTL/3 is gone: the
//     lease renews itself, and its Done channel closes if it is lost;
//   - lock.TTL(ctx), a round trip, became Lease.Deadline, read locally;
//   - lock.Refresh(ctx, ttl, nil) became Lease.Extend(ctx, ttl), which also
//     sets the TTL that later renewals keep.
//
// Run it against the Redis on this machine (redis://127.0.0.1:6379/0):
//
//	go run ./examples/migrate/redislock
//
// or against several independent masters (use 3 or 5):
//
//	go run ./examples/migrate/redislock -nodes redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0,redis://10.0.0.3:6379/0
//
// When -nodes is not given, the DISTLOCK_NODES environment variable is used;
// when that is empty too, the default node redis://127.0.0.1:6379/0.
//
// Expected output:
//
//	I have a lock! (fencing token 1234)
//	Yay, I still have my lock!
//	Extended to 30s
//	Released
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

// lockName was redislock's key. distlock's key is
// distlock.DefaultKeyPrefix + lockName.
const lockName = "my-key"

func main() {
	nodes := flag.String("nodes", os.Getenv("DISTLOCK_NODES"),
		"comma-separated Redis masters, e.g. redis://host:6379/0 (default: $DISTLOCK_NODES, else "+distlock.DefaultNode+")")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, splitNodes(*nodes), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "redislock:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, nodes []string, out io.Writer) error {
	// Before: client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	// and locker := redislock.New(client).
	locker, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		return err
	}
	defer locker.Close()

	// Before: locker.Obtain(ctx, lockName, 10*time.Second, nil), one
	// attempt.
	lease, err := locker.TryAcquire(ctx, lockName, distlock.WithTTL(10*time.Second))
	if errors.Is(err, distlock.ErrLocked) { // before: redislock.ErrNotObtained
		// Before: Obtain again with &redislock.Options{RetryStrategy:
		// redislock.LimitRetry(redislock.LinearBackoff(100*time.Millisecond), 30)}.
		// Now: wait up to 3s; the waiter wakes when the lock is released
		// or expires, not on a fixed tick.
		waitCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		lease, err = locker.Acquire(waitCtx, lockName, distlock.WithTTL(10*time.Second))
	}
	if err != nil {
		return fmt.Errorf("could not obtain lock: %w", err)
	}
	// Check the error before deferring Release: unlike a nil *redislock.Lock,
	// a nil *distlock.Lease has no methods to call.
	defer lease.Release(context.Background())
	fmt.Fprintf(out, "I have a lock! (fencing token %d)\n", lease.Token())

	// Before: a watchdog goroutine calling lock.Refresh(ctx, ttl, nil) every
	// ttl/3, cancelling the work on failure. Now the lease renews itself;
	// Done closes (and Err says why) if it is lost.
	select {
	case <-time.After(50 * time.Millisecond): // the work
	case <-lease.Done():
		return lease.Err()
	}

	// Before: ttl, err := lock.TTL(ctx), a round trip to Redis. Now the
	// lease's validity as this process counts it, no round trip.
	if time.Until(lease.Deadline()) > 0 && lease.Err() == nil {
		fmt.Fprintln(out, "Yay, I still have my lock!")
	}

	// Before: lock.Refresh(ctx, 30*time.Second, nil). Extend also makes
	// later renewals use the new TTL.
	if err := lease.Extend(ctx, 30*time.Second); err != nil {
		return err // wraps distlock.ErrLeaseLost if the lease was lost
	}
	fmt.Fprintf(out, "Extended to %v\n", lease.TTL())

	// Before: lock.Release(ctx), redislock.ErrLockNotHeld if it had
	// expired. Now distlock.ErrLeaseLost; a second Release returns nil,
	// so the deferred one above is harmless.
	if err := lease.Release(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "Released")
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
