//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package main

import (
	"runtime"
	"syscall"
	"unsafe"
)

// controllingTerminal returns the first of stdin, stdout and stderr that
// is distlock's controlling terminal, or -1.
func controllingTerminal() int {
	for fd := range 3 {
		if foregroundGroup(fd) > 0 {
			return fd
		}
	}
	return -1
}

// foregroundGroup returns the foreground process group of the terminal
// fd, or -1 when fd is not the caller's controlling terminal.
func foregroundGroup(fd int) int {
	var pgrp int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp)))
	if errno != 0 {
		return -1
	}
	return int(pgrp)
}

// setForeground makes pgrp the foreground process group of the terminal
// fd. A process outside the foreground that does so is sent SIGTTOU,
// which would stop distlock, unless it blocks the signal: it is blocked
// on this thread (locked to it) for the call.
func setForeground(fd, pgrp int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	set := uint64(1) << (syscall.SIGTTOU - 1)
	var old uint64
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigBlock, uintptr(unsafe.Pointer(&set)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	p := int32(pgrp)
	syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&p)))
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigSetmask, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
}

// how for rt_sigprocmask, from asm-generic/signal-defs.h: every Linux
// architecture Go supports but MIPS (see the build line).
const (
	sigBlock   = 0
	sigSetmask = 2
)
