package distlock

import (
	"context"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/redistest"
)

// A waiting Acquire whose Client's renewals turn late steps out of the
// masters' lines while it cannot send (backlog.go): a lock its holder
// releases goes to another Client's waiter at once, not once the stuck
// waiter's place has lapsed (20s here).
func TestWaiterStandsAsideWhileRenewalsLate(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{})
	open := func(cfg Config) *Client {
		t.Helper()
		cfg.Nodes = redistest.URLs(servers)
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	h := open(Config{})
	w := open(Config{RetryMaxDelay: 5 * time.Second}) // its place lapses 20s after its last attempt
	e := open(Config{})
	ctx := context.Background()
	held, err := h.Acquire(ctx, "aside")
	if err != nil {
		t.Fatal(err)
	}

	// w waits for the lock, first in every line.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		if l, err := w.Acquire(wctx, "aside"); err == nil {
			l.Release(ctx)
		}
	}()
	time.Sleep(300 * time.Millisecond)

	// w's renewals turn late on masters 1 and 2 (stand-ins for batches the
	// masters do not answer).
	late := []*renewalSent{w.backlog.sent(1, time.Second), w.backlog.sent(2, time.Second)}
	defer func() {
		for _, s := range late {
			s.answered()
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	for !w.backlog.closed() {
		if time.Now().After(deadline) {
			t.Fatal("w's acquires never waited")
		}
		time.Sleep(5 * time.Millisecond)
	}

	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	ectx, ecancel := context.WithTimeout(ctx, 3*time.Second)
	defer ecancel()
	l, err := e.Acquire(ectx, "aside")
	if err != nil {
		t.Fatalf("another Client's Acquire of a lock released while the waiter first in line could not send: %v", err)
	}
	l.Release(ctx)
	cancel()
	<-wdone
}
