package main

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from linux/prctl.h.
const prSetChildSubreaper = 36

// becomeSubreaper makes distlock a child subreaper: a process of the job
// whose parent exits becomes distlock's child instead of init's. It
// reports whether that worked (Linux 3.4 and later).
func becomeSubreaper() bool {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	return errno == 0
}

// jobProcAttr puts COMMAND in a process group of its own, in the
// terminal's foreground when distlock had it (tty is a descriptor of
// distlock's controlling terminal, the same number in the child), and
// has the kernel kill COMMAND when distlock dies, however it dies.
func jobProcAttr(tty int, foreground bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if foreground {
		a.Foreground, a.Ctty = true, tty
	}
	return a
}

// children returns the pids of distlock's children, from /proc.
func children() []int {
	self := os.Getpid()
	var pids []int
	for _, p := range processes() {
		if p.ppid == self {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// orphanedGroup reports whether distlock's process group is orphaned: no
// member has a parent in another group of the same session, as a shell
// with job control is. The kernel does not stop such a group on a
// terminal's stop signals, since no shell would continue it.
func orphanedGroup() bool {
	procs := processes()
	byPid := make(map[int]proc, len(procs))
	for _, p := range procs {
		byPid[p.pid] = p
	}
	pgrp := syscall.Getpgrp()
	self, ok := byPid[os.Getpid()]
	if !ok {
		return true
	}
	for _, p := range procs {
		if p.pgrp != pgrp {
			continue
		}
		if parent, ok := byPid[p.ppid]; ok && parent.pgrp != pgrp && parent.sid == self.sid {
			return false
		}
	}
	return true
}

// proc is a process, as /proc/PID/stat describes it.
type proc struct{ pid, ppid, pgrp, sid int }

// processes lists the processes /proc shows.
func processes() []proc {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	procs := make([]proc, 0, len(names))
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		if p, ok := parseStat(stat); ok {
			p.pid = pid
			procs = append(procs, p)
		}
	}
	return procs
}

// parseStat reads the parent, group and session from the contents of
// /proc/PID/stat: "pid (comm) state ppid pgrp session ...", where comm
// may hold spaces and parentheses.
func parseStat(stat []byte) (p proc, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return p, false
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 4 {
		return p, false
	}
	var err [3]error
	p.ppid, err[0] = strconv.Atoi(string(f[1]))
	p.pgrp, err[1] = strconv.Atoi(string(f[2]))
	p.sid, err[2] = strconv.Atoi(string(f[3]))
	return p, err[0] == nil && err[1] == nil && err[2] == nil
}
