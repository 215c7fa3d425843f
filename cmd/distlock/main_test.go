package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// binary is the distlock command, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "distlock-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "distlock")
	// Built without -race: a race-enabled binary starts about a second
	// slower on these machines, and the tests start it some sixty times.
	// (Build it with -race by hand to check the command itself.)
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the distlock command:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// noMaster is a node URL where nothing listens: tests that must not reach
// any master (and never the developer's own on 6379) use it. Its port
// stays taken for the whole test run (reservePort), so that no master
// another test starts meanwhile can get it.
var noMaster = "redis://" + reservePort() + "/0"

// result is one finished distlock process.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// distlockCmd returns the command distlock args, with DISTLOCK_NODES set
// to nodes (noMaster when nodes is empty). It is killed when the test
// ends.
func distlockCmd(t *testing.T, nodes []string, args ...string) *exec.Cmd {
	t.Helper()
	if len(nodes) == 0 {
		nodes = []string{noMaster}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "DISTLOCK_NODES="+strings.Join(nodes, ","))
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs distlock args to its end.
func run(t *testing.T, nodes []string, args ...string) result {
	t.Helper()
	return finish(t, distlockCmd(t, nodes, args...))
}

func finish(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("distlock %q: %v", cmd.Args[1:], err)
	}
	return r
}

// want fails the test unless r exited with code and its stderr contains
// every one of texts.
func (r result) want(t *testing.T, code int, texts ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d; want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
		return
	}
	for _, s := range texts {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr %q; want it to contain %q", r.stderr, s)
		}
	}
}

// startMasters starts n masters for the test and returns them and their
// URLs.
func startMasters(t *testing.T, n int) ([]*redistest.Server, []string) {
	t.Helper()
	s := redistest.StartN(t, n, redistest.Options{})
	return s, redistest.URLs(s)
}

// hold takes the lock name over nodes in this process until the test ends.
func hold(t *testing.T, nodes []string, name string) *distlock.Lease {
	t.Helper()
	c, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l, err := c.Acquire(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// lines reads r line by line into a channel, closed at EOF.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(r)
		for s.Scan() {
			ch <- s.Text()
		}
	}()
	return ch
}

// waitLine returns the first line from ch that contains text, failing
// the test after 20 s.
func waitLine(t *testing.T, ch <-chan string, text string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-ch:
			if !ok {
				t.Fatalf("output ended before a line containing %q", text)
			}
			if strings.Contains(line, text) {
				return line
			}
		case <-timeout:
			t.Fatalf("no line containing %q after 20s", text)
		}
	}
}

// background starts cmd with its stdout and stderr as line channels, and
// returns a function that waits for it and returns its exit status.
func background(t *testing.T, cmd *exec.Cmd) (stdout, stderr <-chan string, wait func() int) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdout, stderr = lines(out), lines(errp)
	var once sync.Once
	code := -1
	wait = func() int {
		once.Do(func() {
			// Drain the pipes first: Wait closes them.
			for range stdout {
			}
			for range stderr {
			}
			cmd.Wait()
			code = cmd.ProcessState.ExitCode()
		})
		return code
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		wait()
	})
	return stdout, stderr, wait
}
