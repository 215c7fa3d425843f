// Command basic shows the shortest useful use of distlock: take a lock,
// do some work while watching for the lease to be lost, then release it.
//
// Run it against the Redis on this machine (redis://127.0.0.1:6379/0):
//
//	go run ./examples/basic
//
// or against several independent Redis masters (use 3 or 5):
//
//	go run ./examples/basic -nodes redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0,redis://10.0.0.3:6379/0
//
// When -nodes is not given, the DISTLOCK_NODES environment variable is
// used, in the same comma-separated form; when that is empty too, the
// default node redis://127.0.0.1:6379/0.
//
// Expected output:
//
//	acquired examples/basic with fencing token 1234
//	released
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/distlock/distlock"
)

// lockName is the lock this program takes. In Redis it is the key
// "distlock:examples/basic" (distlock.DefaultKeyPrefix + lockName).
const lockName = "examples/basic"

func main() {
	nodes := flag.String("nodes", os.Getenv("DISTLOCK_NODES"),
		"comma-separated Redis masters, e.g. redis://host:6379/0 (default: $DISTLOCK_NODES, else "+distlock.DefaultNode+")")
	flag.Parse()

	// Ctrl-C cancels ctx: a waiting Acquire returns, and the lease is
	// released on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if err := run(ctx, splitNodes(*nodes), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "basic:", err)
		os.Exit(1)
	}
}

// run takes the lock, works for a moment while holding it, and releases it.
func run(ctx context.Context, nodes []string, out io.Writer) error {
	// One Client per process, shared by all its goroutines and locks.
	// No nodes means distlock.DefaultNode.
	client, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		return err
	}
	// Close releases any lease still held, e.g. when we return early.
	defer client.Close()

	// Acquire waits while another process holds the lock. The context
	// bounds that wait (5 s here), not how long we may hold the lock.
	acquireCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lease, err := client.Acquire(acquireCtx, lockName)
	if err != nil {
		return fmt.Errorf("acquire %s: %w", lockName, err)
	}
	// The fencing token is strictly greater than any earlier holder's:
	// pass it with every write the lock protects, and have the storage
	// refuse a token lower than one it has already seen.
	fmt.Fprintf(out, "acquired %s with fencing token %d\n", lease.Name(), lease.Token())

	// The "work". The lease renews itself in the background; if it is lost
	// anyway (a majority of masters unreachable), Done closes and we stop.
	select {
	case <-time.After(100 * time.Millisecond):
		// Work finished while we held the lock.
	case <-lease.Done():
		fmt.Fprintf(out, "lease lost, work stopped: %v\n", lease.Err())
		return lease.Err()
	case <-ctx.Done():
		return ctx.Err() // interrupted; the deferred Close releases the lease
	}

	if err := lease.Release(ctx); err != nil {
		return fmt.Errorf("release %s: %w", lockName, err)
	}
	fmt.Fprintln(out, "released")
	return nil
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
