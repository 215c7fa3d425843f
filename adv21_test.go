package distlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Adversarial read 21: master 0 restarts empty, losing its waiting line,
// while a waiter sleeps marked behind another. No "head" announcement can
// come (leave.lua finds no line there), so on the releases that followed
// the waiter slept out its RetryMaxDelay/2..RetryMaxDelay timer with the
// lock free: 969 ms with RetryMaxDelay 2 s, against 1-5 ms before waiters
// behind slept on that timer. The read of master 0's line when the watch
// connection resubscribes now clears every waiter's behind when the line
// is empty (nameWatch.lineEmpty).
func TestAdv21Master0RestartedWaiterBehindWoken(t *testing.T) {
	adv21(t, "adv21", func(s *redistest.Server) error { return s.RestartEmpty() })
}

// The same with master 0 flushed (FLUSHALL) instead: its watch connection
// stays up, so no resubscribe reads the line; the Client's key tracking
// hears the flush, and its watch reads the line again
// (masterWatch.rereadEverything).
func TestAdv21Master0FlushedWaiterBehindWoken(t *testing.T) {
	adv21(t, "adv21-flushed", func(s *redistest.Server) error {
		_, err := s.Do("FLUSHALL")
		return err
	})
}

// adv21 puts a waiter to sleep behind another, then empties master 0 with
// lose, then releases the lock: the waiter behind must get it at once
// after the first waiter released it, not after its RetryMaxDelay.
func adv21(t *testing.T, name string, lose func(*redistest.Server) error) {
	const rmd = 2 * time.Second
	servers := masters(t, 3)
	holder := newClient(t, servers, distlock.Config{TTL: time.Minute})
	first := newClient(t, servers, distlock.Config{})
	nodes := master0First(t, servers) // master 0's answer in every verdict
	behind := newClient(t, nil, distlock.Config{Nodes: nodes, RetryMaxDelay: rmd})
	ctx := ctxTimeout(t, 20*time.Second)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, name)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events, err := behind.Watch(watchCtx, name)
	if err != nil {
		t.Fatal(err)
	}
	<-events

	released := make(chan time.Time, 1)
	go func() {
		fl, err := first.Acquire(ctx, name)
		if err != nil {
			t.Error(err)
			return
		}
		fl.Release(ctx)
		released <- time.Now()
	}()
	waitWaiters(t, servers[0], name, 1)
	got := make(chan time.Time, 1)
	go func() {
		bl, err := behind.Acquire(ctx, name)
		if err != nil {
			t.Error(err)
			return
		}
		got <- time.Now()
		bl.Release(ctx)
	}()
	waitWaiters(t, servers[0], name, 2)
	time.Sleep(20 * time.Millisecond) // its attempt returned: asleep behind
	start := time.Now()
	if err := lose(servers[0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("master 0 emptied in %v", time.Since(start))
	if err := l.Release(ctx); err != nil {
		t.Logf("release: %v", err)
	}
	r := <-released
	g := <-got
	t.Logf("first released at +%v; the waiter behind got it %v later (RetryMaxDelay %v)", r.Sub(start), g.Sub(r), rmd)
	if g.Sub(r) > 100*time.Millisecond {
		t.Errorf("lock free for %v with a waiter waiting", g.Sub(r))
	}
}
