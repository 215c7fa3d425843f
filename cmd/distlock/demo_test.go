package main

import (
	"os"
	"regexp"
	"syscall"
	"testing"
)

// TestDemo runs a short `distlock demo`: it passes its checks and leaves
// nothing behind in TMPDIR.
func TestDemo(t *testing.T) {
	tmp := t.TempDir()
	cmd := distlockCmd(t, nil, "demo", "--duration", "1500ms", "--kill-after", "600ms")
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	r := finish(t, cmd)
	r.want(t, 0)
	if !regexp.MustCompile(`(?m)^\d+ acquisitions, tokens strictly increasing: yes, overlapping holders: 0$`).MatchString(r.stdout) {
		t.Errorf("no clean summary:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)acquired token \d+ \(masters up: 2/3\)$`).MatchString(r.stdout) {
		t.Errorf("no acquisition after master 0 was killed:\n%s", r.stdout)
	}
	empty(t, tmp)
}

// TestDemoInterrupted: SIGINT stops the demo, which stops its masters,
// removes their directories and exits 128+2.
func TestDemoInterrupted(t *testing.T) {
	tmp := t.TempDir()
	cmd := distlockCmd(t, nil, "demo", "--duration", "1m")
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stdout, "acquired token")
	cmd.Process.Signal(syscall.SIGINT)
	waitLine(t, stderr, "interrupted")
	if code := wait(); code != 128+int(syscall.SIGINT) {
		t.Errorf("exit status %d; want %d", code, 128+int(syscall.SIGINT))
	}
	empty(t, tmp)
}

// TestDemoNoRedis: without redis-server in PATH the demo says so.
func TestDemoNoRedis(t *testing.T) {
	cmd := distlockCmd(t, nil, "demo")
	cmd.Env = append(cmd.Env, "PATH="+t.TempDir())
	finish(t, cmd).want(t, 1, "redis-server not found in PATH")
}

// empty fails the test if dir has anything in it: the masters' temporary
// directories must be gone.
func empty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in TMPDIR: %s", e.Name())
	}
}
