//go:build unix

package main

import (
	"fmt"
	"syscall"
	"time"

	"github.com/distlock/distlock"
)

// end starts ending the job: SIGTERM now, SIGKILL after --grace, and
// a look every 20 ms for processes that left the group.
func (j *job) end() { j.endWithin(j.o.grace) }

// endWithin is end with SIGKILL after grace.
func (j *job) endWithin(grace time.Duration) {
	if j.ending {
		return
	}
	j.ending = true
	j.ticker = time.NewTicker(20 * time.Millisecond)
	j.tick = j.ticker.C
	if grace <= 0 {
		j.killAll()
		return
	}
	j.terminate()
	j.grace = grace
	j.killer = time.NewTimer(grace)
	j.kill = j.killer.C
}

// runningOut ends the job because its lease runs out in left, its
// renewals failing (expiry): SIGTERM now, SIGKILL when the lease's
// validity ends, so that no process of the job runs past it
// (TestRunStoppedBeforeLeaseRunsOut).
func (j *job) runningOut(left time.Duration) {
	if j.ending || j.killing {
		return
	}
	j.lost = true
	fmt.Fprintf(j.stderr, "distlock run: the lease on %q runs out in %v, its renewals failing; stopping %s (SIGTERM, SIGKILL when it runs out)\n", j.o.name, left.Round(time.Millisecond), j.o.argv[0])
	j.endWithin(left)
}

// expiry fires when a lease's validity is about to end: window before
// its Deadline, window being --grace but at most a third of the TTL. A
// lease renewed on time never comes that close (each renewal, every
// third of the TTL, moves the Deadline a TTL on), so it fires only when
// renewals have been failing: SIGTERM then, and SIGKILL at the Deadline,
// rather than SIGTERM at the Deadline and SIGKILL --grace after it, when
// another holder may have the lock.
type expiry struct {
	lease *distlock.Lease
	grace time.Duration
	t     *time.Timer
	c     <-chan time.Time
}

func newExpiry(lease *distlock.Lease, grace time.Duration) *expiry {
	e := &expiry{lease: lease, grace: grace}
	e.t = time.NewTimer(e.until())
	e.c = e.t.C
	return e
}

// window is how long before the Deadline the job is stopped.
func (e *expiry) window() time.Duration { return min(e.grace, e.lease.TTL()/3) }

// until is the time left until the window opens.
func (e *expiry) until() time.Duration {
	return max(time.Until(e.lease.Deadline())-e.window(), 0)
}

// due reports, when the timer fired, whether the window is open, with the
// validity left; if the lease was renewed meanwhile, it sets the timer
// again. With no grace there is no window: the lease's end (Done) stops
// the job with SIGKILL.
func (e *expiry) due() (left time.Duration, due bool) {
	left = time.Until(e.lease.Deadline())
	if e.window() > 0 && left <= e.window() {
		return left, true
	}
	if e.window() > 0 {
		e.t.Reset(e.until())
	} else {
		e.c = nil
	}
	return left, false
}

func (e *expiry) stop() { e.t.Stop() }

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
	if j.ending {
		// Being stopped already (it ran out: runningOut): say why it
		// ended, with the kill as it was set.
		fmt.Fprintf(j.stderr, "distlock run: %s\n", errText(j.lease.Err()))
		return
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
	fmt.Fprintf(j.stderr, "distlock run: %s still running %v after SIGTERM: SIGKILL\n", what, j.grace.Round(time.Millisecond))
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
