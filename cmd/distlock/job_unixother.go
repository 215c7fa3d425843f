//go:build unix && !linux

package main

import (
	"os"
	"syscall"
)

// becomeSubreaper: only Linux has child subreapers. Processes of the job
// that outlive their parents become init's children; those that stay in
// the job's process group are still signalled and waited for through it.
func becomeSubreaper() bool { return false }

// jobProcAttr puts COMMAND in a process group of its own. (There is no
// parent-death signal here: COMMAND outlives a distlock killed by SIGKILL.)
func jobProcAttr(tty int, foreground bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// children: without a subreaper, distlock looks for none.
func children() []int { return nil }

// orphanedGroup reports whether distlock's process group may be orphaned
// (see the Linux version): here only distlock's parent is looked at.
func orphanedGroup() bool {
	ppid := os.Getppid()
	pgrp, err := syscall.Getpgid(ppid)
	if err != nil {
		return true
	}
	sid, err := syscall.Getsid(ppid)
	self, err2 := syscall.Getsid(0)
	return err != nil || err2 != nil || pgrp == syscall.Getpgrp() || sid != self
}
