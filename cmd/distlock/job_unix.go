//go:build unix

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/distlock/distlock"
)

// A job is COMMAND and every process it starts, run under a lease. The
// rule it keeps: once the lease is gone, every process of the job gets
// SIGTERM at once and SIGKILL --grace later; once distlock is killed,
// COMMAND dies with it (what COMMAND started runs on: docs/cli.md). Its
// pieces:
//
//   - COMMAND leads a process group of its own, so that one signal
//     reaches every process it started (a shell's pipeline, its
//     background jobs).
//   - On Linux distlock is a child subreaper (PR_SET_CHILD_SUBREAPER):
//     a process of the job whose parent exits becomes distlock's child,
//     even one that left the group with setsid, so distlock finds it and
//     waits for it. COMMAND gets SIGKILL when distlock dies
//     (PR_SET_PDEATHSIG).
//   - distlock waits for its children itself (wait4 on SIGCHLD, with
//     WUNTRACED to see COMMAND stop), all from the supervising goroutine:
//     a pid it signals cannot be reaped and reused in between.
//   - The job is over when COMMAND has exited and no process of it is
//     left: those still running then get SIGTERM, and SIGKILL after
//     --grace. Only then is the lock released.
//   - When distlock runs in the foreground of a terminal, the job gets the
//     terminal's foreground (as a shell gives it to a job), so COMMAND can
//     read it, and Ctrl-C, Ctrl-\ and Ctrl-Z reach it directly.
//   - When the job stops (Ctrl-Z), distlock stops too, so the shell shows
//     the job as stopped; it cannot renew the lease while stopped, so on
//     fg it checks the lease before continuing the job, and kills the job
//     without letting it run again when the lease lapsed meanwhile.
type job struct {
	o      *runOptions
	lease  *distlock.Lease
	stderr io.Writer
	cmd    *exec.Cmd
	pid    int // COMMAND's pid, and the id of the job's process group

	tty    int  // fd of distlock's controlling terminal, or -1
	reaper bool // distlock is a subreaper: the job's orphans are its children

	status    syscall.WaitStatus // COMMAND's, once exited
	exited    bool               // COMMAND has exited and been reaped
	childless bool               // wait4 found no child left
	lost      bool               // the lease ended before the job did
	ending    bool               // the job was sent SIGTERM
	killing   bool               // the job was sent SIGKILL
	termed    map[int]bool       // processes outside the group sent SIGTERM

	// The clocks of a job being ended (end), nil before.
	killer *time.Timer      // SIGKILL after --grace
	kill   <-chan time.Time // killer's channel, until it fires
	ticker *time.Ticker     // the look for processes that left the group
	tick   <-chan time.Time // ticker's channel
}

// supervise runs cmd as a job under lease until the job is over, and
// says how it ended; the error is cmd's failure to start. sigs carries
// the signals distlock passes on.
func (o *runOptions) supervise(lease *distlock.Lease, cmd *exec.Cmd, sigs <-chan os.Signal, stderr io.Writer) (jobEnd, error) {
	j := &job{o: o, lease: lease, stderr: stderr, cmd: cmd, tty: controllingTerminal(), termed: map[int]bool{}}
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)
	tstp := make(chan os.Signal, 1)
	signal.Notify(tstp, syscall.SIGTSTP)
	defer signal.Stop(tstp)
	// A shell's fg continues distlock's group, running or not (after a
	// bg, distlock runs while the shell gives its group the terminal):
	// pass the terminal on to the job then too (TestUseCtrlZBg).
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)

	if err := j.start(); err != nil {
		return jobEnd{}, err
	}
	defer cmd.Process.Release() // reaped by wait4 below, not by cmd.Wait
	defer j.stopClocks()

	lost := lease.Done()
	j.reap()
	for !j.over() {
		select {
		case sig := <-sigs:
			j.signalGroup(sig.(syscall.Signal))
		case <-tstp:
			if j.suspend(syscall.SIGTSTP, false) {
				j.end()
			}
		case <-cont:
			if !j.ending && j.tty >= 0 && foregroundGroup(j.tty) == syscall.Getpgrp() {
				setForeground(j.tty, j.pid)
			}
		case <-chld:
			j.childChanged()
		case <-lost:
			lost = nil
			j.leaseLost()
		case <-j.kill:
			j.kill = nil
			j.graceOver()
		case <-j.tick:
			j.sweep()
		}
	}
	j.takeTerminal()
	return jobEnd{status: exitStatus(j.status), how: describe(j.status), stopped: j.lost}, nil
}

// start starts COMMAND as the job's leader, in a process group of its
// own (given the terminal when distlock has it), with distlock made a
// subreaper first when it can be.
func (j *job) start() error {
	j.reaper = becomeSubreaper()
	foreground := j.tty >= 0 && foregroundGroup(j.tty) == syscall.Getpgrp()
	j.cmd.SysProcAttr = jobProcAttr(j.tty, foreground)
	// Pdeathsig is sent when the thread that started the child exits, not
	// the process: the Go runtime ends a thread only when a goroutine
	// locked to it returns, so Start runs on a thread locked for the call
	// and given back after, never one that a locked goroutine will end.
	runtime.LockOSThread()
	err := j.cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return err
	}
	j.pid = j.cmd.Process.Pid
	return nil
}

// childChanged handles a SIGCHLD: it reaps, suspends the job when
// COMMAND stopped, and ends the processes COMMAND left when it exited.
func (j *job) childChanged() {
	if stop := j.reap(); stop != 0 {
		if j.suspend(stop, true) {
			j.end()
		}
	}
	if j.exited && !j.ending && !j.over() {
		fmt.Fprintf(j.stderr, "distlock run: %s exited; ending the processes it left running (SIGTERM, SIGKILL after %v)\n", j.o.argv[0], j.o.grace)
		j.end()
	}
}

// over reports whether the job has ended: COMMAND exited and no process
// of the job is left.
func (j *job) over() bool {
	if !j.exited || !j.childless {
		return false
	}
	// Without a subreaper, processes that outlived their parents are
	// init's children, not distlock's: the group says whether any is left.
	return syscall.Kill(-j.pid, 0) == syscall.ESRCH
}

// reap collects every child that exited, noting COMMAND's status, and
// returns the signal that stopped COMMAND, if one did.
func (j *job) reap() (stopped syscall.Signal) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG|syscall.WUNTRACED, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil: // ECHILD: none left
			j.childless = true
			return stopped
		case pid == 0:
			j.childless = false
			return stopped
		case pid != j.pid:
			// A process of the job that outlived its parent; a stop of one
			// is its own business.
		case ws.Stopped():
			stopped = ws.StopSignal()
		case ws.Exited() || ws.Signaled():
			j.exited, j.status = true, ws
		}
	}
}

// describe says how a process ended, as os.ProcessState.String does.
func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// exitStatus returns the status a shell would report for a finished
// process: its exit code, or 128+n when signal n killed it.
func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return exitSignal + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// signalNumber returns sig's number, for the 128+n exit status.
func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return 0
}
