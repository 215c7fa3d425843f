package redistest

import "syscall"

// sysProcAttr returns the process attributes for redis-server.
//
// Pdeathsig kills the server when the test process dies, even by SIGKILL
// or a panic that skips cleanups, so that servers never outlive their
// test. (Strictly, the signal is sent when the OS thread that started the
// server exits; the Go runtime keeps threads alive in practice.)
//
// Setpgid puts the server in its own process group so that a terminal's
// Ctrl-C reaches only the test binary, which can then stop its servers in
// order, and so that signals to the group also reach any child redis forks.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
