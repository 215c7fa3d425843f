package benchmarks

import (
	"fmt"
	"os/exec"
	"time"
)

// Burners are CPU-burning processes run beside the masters, so that a
// workload runs on a machine whose cores are also busy with other work
// (issue 16: leases held under load). Each is a separate OS process, a
// shell busy loop with no child of its own, so the kernel shares the
// cores between it, the masters and this process as it would with any
// other program.
type Burners struct {
	cmds []*exec.Cmd
	pids []int
}

// burnLoop is what each burner runs: ":" is a shell builtin, so the loop
// forks nothing and spins on one core until it is killed.
const burnLoop = "while :; do :; done"

// StartBurners starts n burners. The caller must Stop them, whatever
// happens (defer it); on Linux they are also killed if this process dies
// first. If one cannot be started, those already started are stopped.
func StartBurners(n int) (*Burners, error) {
	b := &Burners{}
	for range n {
		cmd := exec.Command("sh", "-c", burnLoop)
		dieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			b.Stop()
			return nil, fmt.Errorf("benchmarks: starting a CPU burner: %w", err)
		}
		b.cmds = append(b.cmds, cmd)
		b.pids = append(b.pids, cmd.Process.Pid)
	}
	return b, nil
}

// Len is how many burners run; 0 for nil.
func (b *Burners) Len() int {
	if b == nil {
		return 0
	}
	return len(b.cmds)
}

// cpu returns the CPU time the burners have used so far; 0 for nil.
func (b *Burners) cpu() time.Duration {
	if b == nil {
		return 0
	}
	return procCPU(b.pids)
}

// Stop kills every burner and waits for it to exit, so none is left
// running or as a zombie. It may be called more than once, and on nil.
func (b *Burners) Stop() {
	if b == nil {
		return
	}
	for _, cmd := range b.cmds {
		cmd.Process.Kill()
		cmd.Wait()
	}
	b.cmds, b.pids = nil, nil
}
