package distlock_test

import (
	"context"
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

// masters starts n real redis-server processes for the test.
func masters(t *testing.T, n int) []*redistest.Server {
	t.Helper()
	return redistest.StartN(t, n, redistest.Options{})
}

// newClient returns a Client over servers, closed when the test ends.
func newClient(t *testing.T, servers []*redistest.Server, cfg distlock.Config) *distlock.Client {
	t.Helper()
	cfg.Nodes = redistest.URLs(servers)
	c, err := distlock.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// lockKeys returns the lock keys (not fence counters) on a server.
func lockKeys(t *testing.T, s *redistest.Server) []string {
	t.Helper()
	out, err := s.Do("KEYS", "distlock:*")
	if err != nil {
		t.Fatalf("KEYS on %s: %v", s.Addr(), err)
	}
	var keys []string
	for _, k := range strings.Split(out, "\n") {
		if k != "" && !strings.HasPrefix(k, "distlock:fence:") {
			keys = append(keys, k)
		}
	}
	return keys
}

// noLockKeys fails the test if any server still has a lock key, waiting
// briefly for clean-ups that run in the background.
func noLockKeys(t *testing.T, servers []*redistest.Server) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for _, s := range servers {
		for {
			keys := lockKeys(t, s)
			if len(keys) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lock keys left on %s: got %v; want none", s.Addr(), keys)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually fails the test unless cond becomes true within 2 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 2s: want %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func redistest0(servers []*redistest.Server) []string { return redistest.URLs(servers) }
