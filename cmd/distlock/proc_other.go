//go:build !unix

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/distlock/distlock"
)

// supervise runs cmd under lease until it exits: without Unix process
// groups, only COMMAND itself is tracked. When the lease is lost it is
// asked to stop, and killed after --grace (Windows delivers no SIGTERM to
// another process: it is killed at once).
func (o *runOptions) supervise(lease *distlock.Lease, cmd *exec.Cmd, sigs <-chan os.Signal, stderr io.Writer) (jobEnd, error) {
	if err := cmd.Start(); err != nil {
		return jobEnd{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var (
		lost     = lease.Done()
		kill     <-chan time.Time
		killer   *time.Timer
		stopping bool
	)
	defer func() {
		if killer != nil {
			killer.Stop()
		}
	}()
	for {
		select {
		case sig := <-sigs:
			signalProcess(cmd.Process, sig)
			continue
		case <-lost:
			lost = nil
			stopping = true
			fmt.Fprintf(stderr, "distlock run: %s; stopping %s (SIGTERM, SIGKILL after %v)\n", errText(lease.Err()), o.argv[0], o.grace)
			signalProcess(cmd.Process, syscall.SIGTERM)
			killer = time.NewTimer(o.grace)
			kill = killer.C
			continue
		case <-kill:
			kill = nil
			fmt.Fprintf(stderr, "distlock run: %s still running %v after SIGTERM: SIGKILL\n", o.argv[0], o.grace)
			cmd.Process.Kill()
			continue
		case <-exited:
		}
		break
	}
	return jobEnd{status: cmd.ProcessState.ExitCode(), how: cmd.ProcessState.String(), stopped: stopping}, nil
}

// signalProcess sends sig to p where the system can, and kills p where it
// cannot.
func signalProcess(p *os.Process, sig os.Signal) {
	if p.Signal(sig) != nil {
		p.Kill()
	}
}

// signalNumber returns sig's number, for the 128+n exit status.
func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return 0
}
