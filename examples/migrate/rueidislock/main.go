// Command rueidislock is the "after" program of docs/migrate-rueidislock.md:
// a program that took a rueidislock lock with WithContext, worked with the
// returned context and released the lock by calling cancel, moved to
// distlock. The "before" program is in the guide.
//
// What changed, line for line:
//   - rueidislock.NewLocker(LockerOption{ClientOption: ..., KeyMajority: 2})
//     (three keys on one Redis) became one distlock.Client over one or more
//     independent masters, a key on each;
//   - ctx, cancel, err := locker.WithContext(ctx, name); work(ctx); cancel()
//     became Client.Do(ctx, name, fn): fn's ctx is cancelled the moment the
//     lease is lost, and Do releases when fn returns;
//   - TryWithContext became TryAcquire, ErrNotLocked became ErrLocked, and
//     the context rueidislock returns is Lease.Context; its cancel function
//     releases nothing: Lease.Release does.
//
// Run it against the Redis on this machine (redis://127.0.0.1:6379/0):
//
//	go run ./examples/migrate/rueidislock
//
// or against several independent masters (use 3 or 5):
//
//	go run ./examples/migrate/rueidislock -nodes redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0,redis://10.0.0.3:6379/0
//
// When -nodes is not given, the DISTLOCK_NODES environment variable is used;
// when that is empty too, the default node redis://127.0.0.1:6379/0.
//
// Expected output:
//
//	did something under fencing token 1234
//	my_lock is held: another TryAcquire gets ErrLocked
//	did something under fencing token 1298
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

// lockName is the lock. rueidislock kept the keys rueidislock:0:my_lock,
// rueidislock:1:my_lock and rueidislock:2:my_lock on one Redis; distlock
// keeps distlock:my_lock on each master.
const lockName = "my_lock"

func main() {
	nodes := flag.String("nodes", os.Getenv("DISTLOCK_NODES"),
		"comma-separated Redis masters, e.g. redis://host:6379/0 (default: $DISTLOCK_NODES, else "+distlock.DefaultNode+")")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, splitNodes(*nodes), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rueidislock:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, nodes []string, out io.Writer) error {
	// Before: locker, err := rueidislock.NewLocker(rueidislock.LockerOption{
	//	ClientOption: rueidis.ClientOption{InitAddress: []string{"localhost:6379"}},
	//	KeyMajority:  1,
	// })
	// For what a URL cannot say (TLS settings, Sentinel), distlock takes one
	// rueidis.ClientOption per master in Config.NodeOptions.
	locker, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		return err
	}
	defer locker.Close() // before: locker.Close()

	// Before:
	//	ctx, cancel, err := locker.WithContext(ctx, "my_lock")
	//	doSomething(ctx)
	//	cancel()
	// Do waits for the lock as WithContext did, but the ctx given to Do
	// bounds only the wait: the lease ends when fn returns, and fn's ctx is
	// cancelled the moment the lease is lost.
	err = locker.Do(ctx, lockName, func(ctx context.Context, l *distlock.Lease) error {
		return doSomething(ctx, l.Token(), out)
	})
	if err != nil {
		return err
	}

	// Before:
	//	ctx, cancel, err := locker.TryWithContext(ctx, "my_lock")
	//	if errors.Is(err, rueidislock.ErrNotLocked) { ... }
	lease, err := locker.TryAcquire(ctx, lockName)
	if errors.Is(err, distlock.ErrLocked) {
		return fmt.Errorf("%s is held by another process: %w", lockName, err)
	} else if err != nil {
		return err
	}
	// The context rueidislock returned is Lease.Context; its cancel
	// releases the context, not the lock.
	lockCtx, cancel := lease.Context(ctx)
	defer cancel()
	switch other, err := locker.TryAcquire(ctx, lockName); {
	case errors.Is(err, distlock.ErrLocked):
		fmt.Fprintf(out, "%s is held: another TryAcquire gets ErrLocked\n", lockName)
	case err == nil:
		other.Release(ctx)
		lease.Release(ctx)
		return fmt.Errorf("%s taken twice", lockName)
	}
	if err := doSomething(lockCtx, lease.Token(), out); err != nil {
		lease.Release(context.Background())
		return err
	}
	return lease.Release(ctx) // before: cancel()
}

// doSomething stands for the work the lock guards.
func doSomething(ctx context.Context, token uint64, out io.Writer) error {
	select {
	case <-time.After(50 * time.Millisecond):
	case <-ctx.Done():
		return context.Cause(ctx) // wraps distlock.ErrLeaseLost if the lease was lost
	}
	fmt.Fprintf(out, "did something under fencing token %d\n", token)
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
