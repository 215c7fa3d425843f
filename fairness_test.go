package distlock_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Tests of fair waiting whichever masters a waiter cannot reach (issue 21,
// items 5 and 6; acquire.go, "Waiting for a held lock").

// proxiedClient returns a Client that reaches each master through its own
// proxy, with the proxies whose index is in cut cut from the start.
func proxiedClient(t *testing.T, servers []*redistest.Server, cfg distlock.Config, cut ...int) *distlock.Client {
	t.Helper()
	proxies := redistest.ProxyN(t, servers)
	for _, i := range cut {
		proxies[i].Cut()
	}
	cfg.Nodes = nil
	for _, p := range proxies {
		cfg.Nodes = append(cfg.Nodes, p.URL())
	}
	c, err := distlock.New(cfg)
	require.NoError(t, err, "New through proxies")
	t.Cleanup(func() { c.Close() }) // masters cut: Close may report them
	return c
}

// churn runs workers goroutines on each Client, each taking name, holding
// it for hold and releasing it, until ctx ends; it returns every wait in
// Acquire (those ctx cut short included), once all have stopped.
func churn(t *testing.T, ctx context.Context, clients []*distlock.Client, workers int, name string, hold time.Duration) func() []time.Duration {
	t.Helper()
	var (
		mu    sync.Mutex
		waits []time.Duration
		wg    sync.WaitGroup
	)
	for _, c := range clients {
		for range workers {
			wg.Go(func() {
				for ctx.Err() == nil {
					start := time.Now()
					l, err := c.Acquire(ctx, name)
					// A wait cut short by the end counts too: a stall
					// may last to the end.
					mu.Lock()
					waits = append(waits, time.Since(start))
					mu.Unlock()
					if err != nil {
						if ctx.Err() == nil {
							t.Errorf("busy worker: Acquire: %v", err)
						}
						return
					}
					time.Sleep(hold)
					assert.NoError(t, l.Release(context.Background()), "busy worker: Release")
				}
			})
		}
	}
	return func() []time.Duration {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return waits
	}
}

// A waiter that cannot reach master 0, while the others can, is served in
// its turn. With the line on master 0 alone it never joined any line, so a
// busy Client handed the lock from goroutine to goroutine past it forever
// (0 acquisitions in 20 s).
func TestWaiterCutFromMasterZeroIsServed(t *testing.T) {
	const name = "cut0"
	servers := masters(t, 3)
	busy := newClient(t, servers, distlock.Config{})
	outsider := proxiedClient(t, servers, distlock.Config{}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := churn(t, ctx, []*distlock.Client{busy}, 4, name, 2*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the handoff chain is running

	var longest time.Duration
	for i := range 5 {
		start := time.Now()
		actx, acancel := context.WithTimeout(ctx, 3*time.Second)
		l, err := outsider.Acquire(actx, name)
		acancel()
		if err != nil {
			cancel()
			done()
			t.Fatalf("acquisition %d of the waiter cut from master 0: %v after %v", i+1, err, time.Since(start))
		}
		longest = max(longest, time.Since(start))
		time.Sleep(2 * time.Millisecond)
		assert.NoError(t, l.Release(ctx), "Release")
	}
	cancel()
	waits := done()
	// Its fair share: 5 goroutines holding 2 ms each, plus the round trips.
	t.Logf("waiter cut from master 0: longest wait %v; busy Client: %d acquisitions, p99 %v", longest, len(waits), percentile(waits, 99))
	assert.LessOrEqual(t, longest, time.Second, "waiter cut from master 0 waited up to %v; want its turn (well under 1s)", longest)
	noLockKeys(t, servers)
}

// A waiter that reaches only master 0 does not stall the others: it does
// not stay first in line there while it cannot win. With the line on master
// 0 alone, everyone else was refused there, and yielded to it, until its
// place lapsed (about 1 s, again and again).
func TestWaiterReachingOnlyMasterZero(t *testing.T) {
	const name = "only0"
	servers := masters(t, 3)
	clients := []*distlock.Client{newClient(t, servers, distlock.Config{}), newClient(t, servers, distlock.Config{})}
	stranded := proxiedClient(t, servers, distlock.Config{}, 1, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		// It keeps trying: its attempts reach master 0 alone.
		_, err := stranded.Acquire(ctx, name)
		assert.ErrorIs(t, err, context.Canceled, "waiter reaching master 0 alone: want it to wait until cancelled")
	})
	done := churn(t, ctx, clients, 2, name, 2*time.Millisecond)
	time.Sleep(3 * time.Second)
	cancel()
	waits := done()
	wg.Wait()
	longest := slices.Max(waits)
	t.Logf("%d acquisitions beside a waiter reaching master 0 alone: p99 %v, longest %v", len(waits), percentile(waits, 99), longest)
	// RetryMaxDelay (250 ms) bounds what it may cost; a stall behind its
	// place lasted its lapse, 1 s.
	assert.LessOrEqual(t, longest, 600*time.Millisecond, "longest wait %v beside a waiter reaching master 0 alone; want no stall (under 600ms)", longest)
	noLockKeys(t, servers)
}

// percentile returns the p-th percentile of d.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
