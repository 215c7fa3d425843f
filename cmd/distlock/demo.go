package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/distlock/distlock/internal/demo"
)

var demoCommand = &command{
	name:     "demo",
	synopsis: "[flags]",
	summary:  "workers contending for a lock over local masters, one killed midway",
	about: `
What 'make demo' shows, from an installed binary: starts --masters local
redis-server processes (redis-server must be in PATH) on free ports of
127.0.0.1, runs --workers workers, each with its own Client, that take turns
on one lock and print their fencing tokens, and kills master 0 after
--kill-after; the remaining majority keeps the lock working. It checks that
every token is greater than the one before and that no two workers held the
lock at once. Every redis-server it started is stopped and its temporary
directory removed when it ends, also on Ctrl-C.

Exit status: 0 the checks passed; 1 a check failed, or the masters could
not be started; 125 usage; 128+n interrupted by signal n.`,
	run: demoMain,
}

func demoMain(c *command, args []string, stdout, stderr io.Writer) int {
	f := newFlags(c)
	opts := demo.Defaults
	f.IntVar(&opts.Masters, "masters", opts.Masters, "Redis masters to start (at least 3)")
	f.IntVar(&opts.Workers, "workers", opts.Workers, "contending workers, each with its own Client")
	f.durationVar(&opts.Duration, "duration", opts.Duration, "how long the workers run (a `duration`, or seconds)")
	f.durationVar(&opts.KillAfter, "kill-after", opts.KillAfter, "when master 0 is killed (a `duration`, or seconds; never if not before --duration)")
	if status, done := f.parse(args, stdout, stderr); done {
		return status
	}
	if f.NArg() > 0 {
		return f.fail(stderr, usagef("no arguments expected; got %q", f.Args()))
	}
	if err := opts.Check(); err != nil {
		return f.fail(stderr, usagef("%v", err))
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var err error
	got := untilSignal(context.Background(), sigs, func(ctx context.Context) {
		err = demo.Run(ctx, stdout, opts)
	})
	switch {
	case err == nil:
		return exitOK
	case got != nil && errors.Is(err, demo.ErrInterrupted):
		fmt.Fprintf(stderr, "distlock demo: %s\n", errText(err))
		return exitSignal + signalNumber(got)
	}
	fmt.Fprintf(stderr, "distlock demo: %s\n", errText(err))
	return exitDemoFailed
}
