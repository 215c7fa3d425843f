// Command watch prints the events of one lock, as other processes take
// it, release it, or die holding it, until interrupted (Ctrl-C).
//
// Try it with examples/basic, which takes the lock "examples/basic": in
// one terminal, watch that lock,
//
//	go run ./examples/watch -name examples/basic
//
// and in another, run basic a few times:
//
//	go run ./examples/basic
//
// Both use the Redis on this machine (redis://127.0.0.1:6379/0) unless
// told otherwise: pass the same masters to both with -nodes, or set
// DISTLOCK_NODES (comma-separated) for both, e.g.
//
//	export DISTLOCK_NODES=redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0,redis://10.0.0.3:6379/0
//
// Without -name, watch watches the lock "examples/watch", which nothing
// else takes.
//
// Expected output, one line per change of the lock's state:
//
//	20:41:07.512 examples/basic watching (Ctrl-C to stop)
//	20:41:09.031 examples/basic acquired (masters 3)
//	20:41:09.134 examples/basic released (masters 3)
//
// A holder that dies without releasing shows "expired" once its lease's
// TTL has run out. Events are hints about the lock, from the messages
// distlock's scripts publish and from Redis keyspace notifications (Watch
// enables them with CONFIG SET notify-keyspace-events unless they are on
// already): only holding a lease means holding the lock.
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

// defaultName is the lock watched when -name is not given.
const defaultName = "examples/watch"

// timeFormat starts each line: the time the Client saw the change.
const timeFormat = "15:04:05.000"

func main() {
	nodes := flag.String("nodes", os.Getenv("DISTLOCK_NODES"),
		"comma-separated Redis masters, e.g. redis://host:6379/0 (default: $DISTLOCK_NODES, else "+distlock.DefaultNode+")")
	name := flag.String("name", defaultName, "the lock to watch (examples/basic takes \"examples/basic\")")
	flag.Parse()

	// Ctrl-C cancels ctx, which ends the watch.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if err := run(ctx, splitNodes(*nodes), *name, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "watch:", err)
		os.Exit(1)
	}
}

// run prints the events of the lock name to out until ctx ends; then it
// returns nil.
func run(ctx context.Context, nodes []string, name string, out io.Writer) error {
	client, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		return err
	}
	defer client.Close()

	// Watch returns once it is subscribed on a majority of masters; the
	// channel is closed when ctx ends.
	events, err := client.Watch(ctx, name)
	if err != nil {
		return fmt.Errorf("watch %s: %w", name, err)
	}
	fmt.Fprintf(out, "%s %s watching (Ctrl-C to stop)\n", time.Now().Format(timeFormat), name)
	for ev := range events {
		fmt.Fprintln(out, format(ev))
	}
	return nil
}

// format renders an event as one line, e.g.
// "15:04:05.000 examples/watch acquired (masters 3)".
func format(ev distlock.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s (masters %d", ev.Time.Format(timeFormat), ev.Name, ev.Type, ev.Masters)
	if ev.Initial {
		b.WriteString(", already held when the watch began")
	}
	if ev.Missed > 0 {
		fmt.Fprintf(&b, ", %d events missed before this one", ev.Missed)
	}
	b.WriteString(")")
	return b.String()
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
