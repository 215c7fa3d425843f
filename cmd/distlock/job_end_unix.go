//go:build unix

package main

import (
	"fmt"
	"syscall"
	"time"
)

// end starts ending the job: SIGTERM now, SIGKILL after --grace, and
// a look every 20 ms for processes that left the group.
func (j *job) end() {
	if j.ending {
		return
	}
	j.ending = true
	j.ticker = time.NewTicker(20 * time.Millisecond)
	j.tick = j.ticker.C
	if j.o.grace == 0 {
		j.killAll()
		return
	}
	j.terminate()
	j.killer = time.NewTimer(j.o.grace)
	j.kill = j.killer.C
}

// stopClocks stops the timer and the ticker that end started.
func (j *job) stopClocks() {
	if j.killer != nil {
		j.killer.Stop()
	}
	if j.ticker != nil {
		j.ticker.Stop()
	}
}

// leaseLost handles the end of the lease: the job ends, unless it was
// killed already (lost while stopped).
func (j *job) leaseLost() {
	j.lost = true
	if j.killing {
		return // lost while stopped: killed already
	}
	fmt.Fprintf(j.stderr, "distlock run: %s; stopping %s (SIGTERM, SIGKILL after %v)\n", errText(j.lease.Err()), j.o.argv[0], j.o.grace)
	j.end()
}

// graceOver kills what is left of the job once --grace has passed
// since SIGTERM.
func (j *job) graceOver() {
	what := j.o.argv[0]
	if j.exited {
		what = "processes " + j.o.argv[0] + " left"
	}
	fmt.Fprintf(j.stderr, "distlock run: %s still running %v after SIGTERM: SIGKILL\n", what, j.o.grace)
	j.killAll()
}

// sweep is the look, every tick while the job ends, for processes that
// left the group: it reaps, then sends SIGKILL to every process of the
// job once killing, else SIGTERM to those not sent it yet.
func (j *job) sweep() {
	j.reap()
	if j.killing {
		j.killAll()
	} else {
		j.terminate()
	}
}

// signalGroup sends sig to the job's process group, continuing it first
// when sig would end it, so that a stopped job receives it.
func (j *job) signalGroup(sig syscall.Signal) {
	syscall.Kill(-j.pid, sig)
	if sig != syscall.SIGCONT && sig != syscall.SIGSTOP && sig != syscall.SIGTSTP {
		syscall.Kill(-j.pid, syscall.SIGCONT)
	}
}

// terminate sends SIGTERM to the group, and to each process that left it,
// once.
func (j *job) terminate() {
	if !j.termed[-j.pid] {
		j.termed[-j.pid] = true
		j.signalGroup(syscall.SIGTERM)
	}
	for _, pid := range j.orphans() {
		if !j.termed[pid] {
			j.termed[pid] = true
			syscall.Kill(pid, syscall.SIGTERM)
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
}

// killAll sends SIGKILL to the group and to every child of distlock.
func (j *job) killAll() {
	j.killing = true
	syscall.Kill(-j.pid, syscall.SIGKILL)
	for _, pid := range j.orphans() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// orphans returns distlock's children other than COMMAND: the job's
// processes that outlived their parents. None without a subreaper.
func (j *job) orphans() []int {
	if !j.reaper {
		return nil
	}
	var pids []int
	for _, pid := range children() {
		if pid != j.pid {
			pids = append(pids, pid)
		}
	}
	return pids
}
