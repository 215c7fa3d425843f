//go:build unix

package main

import (
	"os"
	"syscall"
)

// sysProcAttr puts COMMAND in a process group of its own, so that the
// signals distlock sends reach every process COMMAND started (a shell
// script's children too), and a terminal's Ctrl-C reaches distlock only,
// which passes it on once.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to p's process group. Errors are ignored: the
// group may have exited already, which is what the signal was for.
func signalGroup(p *os.Process, sig os.Signal) {
	if s, ok := sig.(syscall.Signal); ok {
		syscall.Kill(-p.Pid, s)
		return
	}
	p.Signal(sig)
}

// exitStatus returns the status a shell would report for a finished
// process: its exit code, or 128+n when signal n killed it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignal + int(ws.Signal())
	}
	return ps.ExitCode()
}

// signalNumber returns sig's number, for the 128+n exit status.
func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return 0
}
