package benchmarks

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd when the thread that started it
// exits: if this process dies before it can stop its burners (a panic on
// another goroutine, a signal), they do not outlive it. The Go runtime
// does not end its threads while the process runs (no goroutine here
// locks one), so the signal comes only when the process is gone.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
