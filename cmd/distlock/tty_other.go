//go:build unix && !(linux && !mips && !mipsle && !mips64 && !mips64le)

package main

// Here distlock does not hand the terminal to the job: the job runs in a
// background process group, and one of its processes that reads the
// terminal is stopped by SIGTTIN, which ends the job (see job.suspend).

func controllingTerminal() int   { return -1 }
func foregroundGroup(fd int) int { return -1 }
func setForeground(fd, pgrp int) {}
