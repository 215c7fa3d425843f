package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// holder is the running child process of holder A.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	msgs  chan string // its "@" lines, without the "@"
	done  chan error  // its exit
	once  sync.Once
}

// startA starts holder A: this program again, with roleEnv=A. Its lines
// for people are copied to out; its "@" lines go to msgs.
func startA(ctx context.Context, nodes []string, dsn, table string, ttl time.Duration, out io.Writer) (*holder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to start holder A: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(),
		roleEnv+"=A",
		nodesEnv+"="+strings.Join(nodes, ","),
		dsnEnv+"="+dsn,
		tableEnv+"="+table,
		ttlEnv+"="+ttl.String(),
	)
	cmd.Stderr = out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start holder A: %w", err)
	}
	h := &holder{cmd: cmd, stdin: stdin, msgs: make(chan string, 8), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if msg, ok := strings.CutPrefix(sc.Text(), "@"); ok {
				h.msgs <- msg
			} else {
				fmt.Fprintln(out, sc.Text())
			}
		}
		close(h.msgs)
		// Wait only after stdout is drained, as exec requires.
		h.done <- cmd.Wait()
	}()
	return h, nil
}

// next returns holder A's next "@" message.
func (h *holder) next(ctx context.Context, timeout time.Duration) (string, error) {
	select {
	case msg, ok := <-h.msgs:
		if !ok {
			return "", fmt.Errorf("holder A ended early: %v", h.wait(timeout))
		}
		return msg, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("holder A said nothing for %v", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// wait waits for holder A to exit, and returns its error.
func (h *holder) wait(timeout time.Duration) error {
	var err error
	h.once.Do(func() {
		h.stdin.Close()
		select {
		case err = <-h.done:
		case <-time.After(timeout):
			h.cmd.Process.Signal(syscall.SIGCONT)
			h.cmd.Process.Kill()
			err = <-h.done
			err = fmt.Errorf("holder A did not exit within %v; killed: %v", timeout, err)
		}
		if err != nil {
			err = fmt.Errorf("holder A: %w", err)
		}
	})
	return err
}

// stop ends holder A if it is still running: a frozen process would
// otherwise never exit.
func (h *holder) stop() {
	h.once.Do(func() {
		h.stdin.Close()
		h.cmd.Process.Signal(syscall.SIGCONT)
		h.cmd.Process.Kill()
		<-h.done
	})
}

// syncWriter serializes writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
