package main

import (
	"bytes"
	"context"
	"net"
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
	opts := defaults
	opts.duration = 1500 * time.Millisecond
	opts.killAfter = 600 * time.Millisecond

	var out bytes.Buffer
	err := runWith(t.Context(), &out, opts)
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
}

// TestInterrupted checks that a cancelled demo (Ctrl-C) ends promptly,
// reports the interruption and leaves no goroutine behind (TestMain).
func TestInterrupted(t *testing.T) {
	opts := defaults
	opts.duration = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 800*time.Millisecond)
	defer cancel()

	start := time.Now()
	var out bytes.Buffer
	err := runWith(ctx, &out, opts)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("run after cancel: err = %v, want interrupted", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run took %v after cancel, want it to end promptly", d)
	}
	if !strings.Contains(out.String(), "overlapping holders: 0") {
		t.Errorf("no clean summary after cancel:\n%s", out.String())
	}
}
