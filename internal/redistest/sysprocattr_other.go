//go:build unix && !linux

package redistest

import "syscall"

// sysProcAttr returns the process attributes for redis-server. Setpgid
// puts the server in its own process group so that a terminal's Ctrl-C
// reaches only the test binary. Pdeathsig is Linux-only, so elsewhere a
// server may outlive a test process that dies without running cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
