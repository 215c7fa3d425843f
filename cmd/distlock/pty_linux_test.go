package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// A terminal is a pseudo-terminal that a test process has as its
// controlling terminal, read and typed into from the test.
type terminal struct {
	master *os.File

	mu     sync.Mutex // guards output
	output strings.Builder
	read   chan struct{} // closed and replaced when output grows
	closed chan struct{} // closed when the master reads EOF or an error
}

// openTerminal returns a new pseudo-terminal and its slave side, which
// the caller gives a process; both are closed when the test ends.
func openTerminal(t *testing.T) (*terminal, *os.File) {
	t.Helper()
	// Non-blocking, so that os.NewFile makes it pollable and Close ends
	// a pending Read.
	fd, err := syscall.Open("/dev/ptmx", syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		master.Close()
		t.Fatalf("unlockpt: %v", errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		master.Close()
		t.Fatalf("ptsname: %v", errno)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	term := &terminal{master: master, read: make(chan struct{}), closed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(term.closed)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.output.Write(buf[:n])
			close(term.read)
			term.read = make(chan struct{})
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		slave.Close()
		master.Close()
		<-done
	})
	return term, slave
}

// startInTerminal starts cmd as the leader of a new session whose
// controlling terminal is a new pseudo-terminal, with stdin, stdout and
// stderr on it; as a login shell is started. It is killed when the test
// ends.
func startInTerminal(t *testing.T, cmd *exec.Cmd) *terminal {
	t.Helper()
	term, slave := openTerminal(t)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the process has it
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return term
}

// type_ writes s to the terminal as if typed.
func (term *terminal) type_(t *testing.T, s string) {
	t.Helper()
	if _, err := term.master.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// text returns everything the terminal has shown so far.
func (term *terminal) text() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.output.String()
}

// waitFor waits until the terminal has shown text, and fails the test
// after timeout.
func (term *terminal) waitFor(t *testing.T, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		term.mu.Lock()
		shown, read := term.output.String(), term.read
		term.mu.Unlock()
		if strings.Contains(shown, text) {
			return
		}
		select {
		case <-read:
		case <-term.closed:
			if !strings.Contains(term.text(), text) {
				t.Fatalf("terminal closed without showing %q; it showed:\n%s", text, term.text())
			}
			return
		case <-deadline:
			t.Fatalf("terminal did not show %q within %v; it showed:\n%s", text, timeout, term.text())
		}
	}
}
