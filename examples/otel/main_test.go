package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distlock/distlock/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example prints an acquire span per acquisition with its token, the
// failed TryAcquire, the releases, and the metrics counting all of them.
func TestRun(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, redistest.URLs(servers), 3, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	got := out.String()
	t.Log("\n" + got)
	count := func(re string) int { return len(regexp.MustCompile(re).FindAllString(got, -1)) }
	// 3 rounds for each of 2 Clients, then one more Acquire.
	if n := count(`(?m)^span distlock\.acquire \S+ lock=examples/otel mode=wait attempts=\d+ token=\d+$`); n != 7 {
		t.Errorf("%d successful acquire spans; want 7", n)
	}
	if n := count(`(?m)^span distlock\.acquire \S+ lock=examples/otel mode=try attempts=1 error=locked$`); n != 1 {
		t.Errorf("%d failed TryAcquire spans; want 1", n)
	}
	if n := count(`(?m)^span distlock\.release \S+ lock=examples/otel token=\d+$`); n != 7 {
		t.Errorf("%d release spans; want 7", n)
	}
	for _, want := range []string{
		"metric distlock.acquire.duration{distlock.acquire.mode=try,error.type=locked} count=1 ",
		"metric distlock.acquire.duration{distlock.acquire.mode=wait} count=7 ",
		"metric distlock.lease.held 0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
