package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/distlock/distlock"
)

// holderA is holder A, run in the child process. It reports to the parent
// on stdout: lines for people, and lines starting with "@" for the parent.
// It returns the process's exit code.
func holderA() int {
	if err := runA(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "A:", err)
		return 1
	}
	return 0
}

func runA(in io.Reader, out io.Writer) error {
	ctx := context.Background()
	ttl, err := time.ParseDuration(os.Getenv(ttlEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", ttlEnv, err)
	}
	table := os.Getenv(tableEnv)

	db, err := connect(ctx, os.Getenv(dsnEnv))
	if err != nil {
		return err
	}
	defer db.Close(ctx)

	client, err := distlock.New(distlock.Config{Nodes: splitNodes(os.Getenv(nodesEnv))})
	if err != nil {
		return err
	}
	defer client.Close()

	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	lease, err := client.Acquire(actx, lockName, distlock.WithTTL(ttl))
	cancel()
	if err != nil {
		return fmt.Errorf("acquire %s: %w", lockName, err)
	}
	token := lease.Token()

	accepted, err := fencedWrite(ctx, db, table, lockName, token, "v1")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "A: token %d %s v1\n", token, verdict(accepted, "wrote"))

	// The check that a lock alone relies on: the lease is held right now.
	if err := lease.Err(); err != nil {
		return fmt.Errorf("lease lost before the pause: %w", err)
	}
	fmt.Fprintln(out, "A: lease held; next write after a pause")

	// Here the parent freezes this process (SIGSTOP) and later resumes it
	// (SIGCONT), then says "go": a process can be paused between any check
	// and the write it guards. Reading a line only fixes where the pause
	// falls; the SIGSTOP is what makes the lease run out, since a frozen
	// process sends no renewals.
	fmt.Fprintf(out, "@ready %d\n", token)
	if _, err := bufio.NewReader(in).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting to be woken: %w", err)
	}

	// The late write, with the token A acquired: storage decides.
	accepted, err = fencedWrite(ctx, db, table, lockName, token, "v3")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "A: woke, late write with token %d: %s\n", token, verdict(accepted, "ACCEPTED"))
	if accepted {
		fmt.Fprintln(out, "@late accepted")
	} else {
		fmt.Fprintln(out, "@late refused")
	}

	// Now that the runtime runs again, the lease says what happened.
	<-lease.Done()
	fmt.Fprintf(out, "A: its lease says: %v\n", lease.Err())
	// Release of a lost lease deletes only keys that still hold A's value:
	// B's keys are safe. It reports the loss, which we know already.
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := lease.Release(rctx); err != nil && !errors.Is(err, distlock.ErrLeaseLost) {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}
