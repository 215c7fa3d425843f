package main

import (
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun runs the example against three masters of its own (never the
// Redis on port 6379) and checks what it prints and what it leaves behind.
func TestRun(t *testing.T) {
	masters := redistest.StartN(t, 3, redistest.Options{})

	var out bytes.Buffer
	if err := run(t.Context(), redistest.URLs(masters), &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}

	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("output has %d lines, want 2:\n%s", len(lines), out.String())
	}
	m := regexp.MustCompile(`^acquired examples/basic with fencing token (\d+)$`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("first line = %q, want \"acquired examples/basic with fencing token N\"", lines[0])
	}
	if token, err := strconv.ParseUint(m[1], 10, 64); err != nil || token == 0 {
		t.Errorf("fencing token = %q, want a number > 0", m[1])
	}
	if lines[1] != "released" {
		t.Errorf("second line = %q, want \"released\"", lines[1])
	}

	// Release deletes the lock key on every master; the slowest master's
	// delete may still be in flight when Release returns with a majority.
	key := distlock.DefaultKeyPrefix + lockName
	for _, s := range masters {
		deadline := time.Now().Add(2 * time.Second)
		for {
			n, err := s.Do("EXISTS", key)
			if err != nil {
				t.Fatalf("EXISTS %s on %s: %v", key, s.Addr(), err)
			}
			if n == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("key %s still on %s after release", key, s.Addr())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestSplitNodes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"redis://a:6379/0", []string{"redis://a:6379/0"}},
		{"a:1, b:2 ,,c:3", []string{"a:1", "b:2", "c:3"}},
	} {
		if got := splitNodes(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitNodes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
