package main

import (
	"bytes"
	"regexp"
	"testing"

	"go.uber.org/goleak"

	"github.com/distlock/distlock/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun runs the program against three masters of its own (never the
// Redis on port 6379) and checks what it prints.
func TestRun(t *testing.T) {
	masters := redistest.StartN(t, 3, redistest.Options{})
	var out bytes.Buffer
	if err := run(t.Context(), redistest.URLs(masters), &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if !want.MatchString(out.String()) {
		t.Errorf("output:\n%s\nwant it to match %s", out.String(), want)
	}
}

var want = regexp.MustCompile(`^report written under fencing token [1-9]\d*\nlock released\n$`)
