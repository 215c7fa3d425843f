package main

import (
	"fmt"
	"io"
)

var holdCommand = &command{
	name:     "hold",
	synopsis: "[flags] NAME",
	summary:  "hold a lock until interrupted",
	about: `
Waits for the lock NAME (with --try or -n, gives up at once when it is
held), prints the lease's fencing token on stdout, and holds the lock,
renewing it, until SIGINT, SIGTERM, SIGHUP or SIGQUIT; then releases it and
exits 0. As etcdctl lock NAME with no command: for holding a lock by hand
while you work, or from a script that kills it when done.

Exit status: 0 released after a signal; 122 the lease was lost; 123
masters unreachable; 124 (or -E) lock not acquired; 125 usage; 128+n a
signal n came before the lock was taken.`,
	run: holdMain,
}

func holdMain(c *command, args []string, stdout, stderr io.Writer) int {
	f := newFlags(c)
	o := runOptions{cmd: "hold"}
	o.lockFlags(f)
	if status, done := f.parse(args, stdout, stderr); done {
		return status
	}
	switch rest := f.Args(); {
	case len(rest) == 0:
		return f.fail(stderr, usagef("missing lock NAME"))
	case len(rest) > 1:
		return f.fail(stderr, extraArgs(rest, "one lock NAME", " (to run a command under it: distlock run NAME -- COMMAND)"))
	}
	o.name = f.Arg(0)
	cfg, err := o.checkLock(f)
	if err != nil {
		return f.fail(stderr, err)
	}
	sigs, stop := notifyStop()
	defer stop()
	client, status := o.connect(f, cfg, sigs, stderr)
	if client == nil {
		return status
	}
	defer closeSoon(client)

	lease, status := o.acquire(client, sigs, stderr)
	if lease == nil {
		return status
	}
	release := func() error { return releaseBounded(lease) }
	fmt.Fprintln(stdout, lease.Token())
	fmt.Fprintf(stderr, "distlock hold: holding lock %q (token %d) until interrupted\n", o.name, lease.Token())
	select {
	case sig := <-sigs:
		if err := release(); err != nil {
			fmt.Fprintf(stderr, "distlock hold: %v: releasing %q: %s\n", sig, o.name, errText(err))
		} else {
			fmt.Fprintf(stderr, "distlock hold: %v: lock %q released\n", sig, o.name)
		}
		return exitOK
	case <-lease.Done():
		fmt.Fprintf(stderr, "distlock hold: %s\n", errText(lease.Err()))
		release()
		return exitLost
	}
}
