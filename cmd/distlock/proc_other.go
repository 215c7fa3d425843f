//go:build !unix

package main

import (
	"os"
	"syscall"
)

// sysProcAttr: without Unix process groups COMMAND runs as is.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup sends sig to p where the system can, and kills p where it
// cannot (Windows delivers no SIGTERM or SIGINT to another process).
func signalGroup(p *os.Process, sig os.Signal) {
	if p.Signal(sig) != nil {
		p.Kill()
	}
}

// exitStatus returns p's exit code.
func exitStatus(ps *os.ProcessState) int { return ps.ExitCode() }

// signalNumber returns sig's number, for the 128+n exit status.
func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return 0
}
