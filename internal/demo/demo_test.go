package demo

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDemo runs a shorter demo and checks its own verdict: tokens strictly
// increasing, no two holders at once, the lock still taken after master 0
// was killed, and every master stopped at the end.
func TestDemo(t *testing.T) {
	opts := Defaults
	opts.Duration = 1500 * time.Millisecond
	opts.KillAfter = 600 * time.Millisecond
	tmp := tmpDir(t)

	var out bytes.Buffer
	err := Run(t.Context(), &out, opts)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	text := out.String()

	m := regexp.MustCompile(`(?m)^(\d+) acquisitions, tokens strictly increasing: (.*), overlapping holders: (\d+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no summary line in the output")
	}
	if n, _ := strconv.Atoi(m[1]); n < 2 {
		t.Errorf("%s acquisitions, want at least 2", m[1])
	}
	if m[2] != "yes" {
		t.Errorf("tokens strictly increasing: %s, want yes", m[2])
	}
	if m[3] != "0" {
		t.Errorf("overlapping holders: %s, want 0", m[3])
	}
	if !strings.Contains(text, "--- killing master 0 (127.0.0.1:") {
		t.Error("master 0 was not killed")
	}
	if !regexp.MustCompile(`(?m)acquired token \d+ \(masters up: 2/3\)$`).MatchString(text) {
		t.Error("no acquisition after master 0 was killed")
	}

	// Nothing may be left running: every master's port refuses connections.
	for _, addr := range regexp.MustCompile(`redis://(127\.0\.0\.1:\d+)/0`).FindAllStringSubmatch(text, -1) {
		if c, err := net.DialTimeout("tcp", addr[1], time.Second); err == nil {
			c.Close()
			t.Errorf("master %s still accepts connections after the demo", addr[1])
		}
	}
	noneLeft(t, tmp)
}

// TestInterrupted checks that a cancelled demo (Ctrl-C) ends promptly,
// reports the interruption and leaves no goroutine behind (TestMain).
func TestInterrupted(t *testing.T) {
	opts := Defaults
	opts.Duration = time.Minute
	tmp := tmpDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 800*time.Millisecond)
	defer cancel()

	start := time.Now()
	var out bytes.Buffer
	err := Run(ctx, &out, opts)
	if !errors.Is(err, ErrInterrupted) {
		t.Errorf("run after cancel: err = %v, want interrupted", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run took %v after cancel, want it to end promptly", d)
	}
	if !strings.Contains(out.String(), "overlapping holders: 0") {
		t.Errorf("no clean summary after cancel:\n%s", out.String())
	}
	noneLeft(t, tmp)
}

// tmpDir points TMPDIR, where the masters' directories go, at a fresh
// directory, and returns it.
func tmpDir(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

// noneLeft fails the test if the demo left anything in dir.
func noneLeft(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in TMPDIR: %s", e.Name())
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, tc := range []struct {
		change func(*Options)
		want   string // in the error; "" for none
	}{
		{func(*Options) {}, ""},
		{func(o *Options) { o.Masters = 2 }, "masters: 2"},
		{func(o *Options) { o.Workers = 0 }, "workers: 0"},
		{func(o *Options) { o.Duration = 0 }, "duration: 0s"},
		{func(o *Options) { o.Hold = -1 }, "must not be negative"},
	} {
		o := Defaults
		tc.change(&o)
		err := o.Check()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Check(%+v) = %v; want nil", o, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Check(%+v) = %v; want an error containing %q", o, err, tc.want)
		}
	}
}
