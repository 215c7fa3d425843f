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
//
// The workers are in internal/demo, which `distlock demo` runs too; each
// uses only distlock's public API (Client.Acquire, Lease.Token, Lease.Done,
// Lease.Release).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/distlock/distlock/internal/demo"
)

func main() {
	// Ctrl-C cancels ctx; the demo then winds down and stops every master.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if err := demo.Run(ctx, os.Stdout, demo.Defaults); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
