//go:build unix

package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// ttyStopSignals are the stops that come from a terminal: the job stopped
// by them waits for its shell's fg or bg.
func ttyStop(sig syscall.Signal) bool {
	return sig == syscall.SIGTSTP || sig == syscall.SIGTTIN || sig == syscall.SIGTTOU
}

// suspend handles a stop of the job: COMMAND stopped by sig (fromJob), or
// distlock sent SIGTSTP. Every process of the job stops; distlock stops
// as a shell's job would, so that the shell shows the job stopped; when
// continued, it continues the job if the lease still holds. It reports
// whether the job must end instead: it stopped for the terminal while
// distlock cannot give it the terminal.
//
// A stop by SIGSTOP from elsewhere is not a terminal's: the job stays
// stopped and distlock keeps the lease.
func (j *job) suspend(sig syscall.Signal, fromJob bool) (end bool) {
	if fromJob && !ttyStop(sig) || j.ending {
		return false
	}
	j.signalGroup(syscall.SIGSTOP)
	for _, pid := range j.orphans() {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	hadTerminal := j.takeTerminal()
	// Stop, as a shell's job would. SIGSTOP, because the Go runtime
	// ignores a SIGTSTP it was once asked to catch. When the job had the
	// terminal, the Ctrl-Z that stopped it never reached distlock's own
	// group (a pipeline distlock is part of): stop that group, as the
	// terminal would have. The kernel does not stop a group that no shell
	// watches (orphaned) on a terminal's stop signals, which nobody would
	// continue; neither does distlock, and it goes on at once.
	//
	// kill returns before the stop takes hold: the kernel hands a stop
	// to the process's main thread, and this one stops only when it next
	// enters the kernel. Checking the lease before then would check it
	// before the stop. So wait for the SIGCONT that ends the stop.
	if !orphanedGroup() {
		cont := make(chan os.Signal, 1)
		signal.Notify(cont, syscall.SIGCONT)
		if hadTerminal {
			syscall.Kill(0, syscall.SIGSTOP)
		} else {
			syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		}
		<-cont
		signal.Stop(cont)
	}

	// Continued. distlock renewed nothing while stopped.
	if err := j.lease.Err(); err != nil {
		j.lost = true
		fmt.Fprintf(j.stderr, "distlock run: %s while stopped; killing %s before it runs again\n", errText(err), j.o.argv[0])
		j.ending = true
		j.killAll()
		return false
	}
	if j.tty >= 0 && foregroundGroup(j.tty) == syscall.Getpgrp() {
		setForeground(j.tty, j.pid)
	} else if sig == syscall.SIGTTIN || sig == syscall.SIGTTOU {
		fmt.Fprintf(j.stderr, "distlock run: %s stopped by %v: it used the terminal while distlock runs in the background; ending it (run distlock in the foreground, or give %s its input from a file or a pipe)\n", j.o.argv[0], sig, j.o.argv[0])
		return true
	}
	j.signalGroup(syscall.SIGCONT)
	for _, pid := range j.orphans() {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	return false
}

// takeTerminal gives the terminal's foreground back to distlock's group
// when the job has it, and reports whether it had.
func (j *job) takeTerminal() bool {
	if j.tty < 0 || j.pid == 0 || foregroundGroup(j.tty) != j.pid {
		return false
	}
	setForeground(j.tty, syscall.Getpgrp())
	return true
}
