//go:build unix

package redistest

import (
	"os"
	"syscall"
)

// The signal helpers address the server's whole process group (see
// sysProcAttr), so that a child forked by redis-server, for example to
// rewrite the append-only file, is stopped, resumed and killed with it.

func killGroup(p *os.Process) error { return signalGroup(p, syscall.SIGKILL) }
func stopGroup(p *os.Process) error { return signalGroup(p, syscall.SIGSTOP) }
func contGroup(p *os.Process) error { return signalGroup(p, syscall.SIGCONT) }

func signalGroup(p *os.Process, sig syscall.Signal) error {
	return syscall.Kill(-p.Pid, sig)
}
