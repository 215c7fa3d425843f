//go:build !unix

package redistest

import (
	"errors"
	"os"
	"syscall"
)

// This file only keeps the package compiling on systems without Unix
// signals; Pause and Resume are unsupported there.

var errNoSignals = errors.New("pause and resume need Unix signals")

func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) error { return p.Kill() }
func stopGroup(p *os.Process) error { return errNoSignals }
func contGroup(p *os.Process) error { return errNoSignals }
