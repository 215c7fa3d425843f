package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/distlock/distlock/internal/demo"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDefaults runs the demo as main does, at full size and length (5 s),
// and checks its summary. internal/demo's tests check the demo itself more
// closely: leftovers, Ctrl-C, options.
func TestDefaults(t *testing.T) {
	var out bytes.Buffer
	err := demo.Run(t.Context(), &out, demo.Defaults)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo.Run: %v", err)
	}
	if !regexp.MustCompile(`(?m)^\d+ acquisitions, tokens strictly increasing: yes, overlapping holders: 0$`).MatchString(out.String()) {
		t.Error("no clean summary line")
	}
	if !strings.Contains(out.String(), "--- killing master 0") {
		t.Error("master 0 was not killed")
	}
}
