package distlock_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Tests of masters at different distances (issue 16): a slow minority
// costs nothing, and what still needs its answer goes on in the
// background, which Close waits for.

// farClient returns a Client whose master 2 answers d late (a proxy),
// the others directly.
func farClient(t *testing.T, servers []*redistest.Server, d time.Duration) *distlock.Client {
	t.Helper()
	p, err := redistest.NewProxy(servers[2].Addr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	p.SetLatency(d)
	nodes := redistest.URLs(servers)
	nodes[2] = p.URL()
	c, err := distlock.New(distlock.Config{Nodes: nodes})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// Release returns once a majority confirmed the deletes, without waiting
// for a far master's answers (to the acquire, then to its delete), whose
// key is still deleted in the background.
func TestReleaseAtMajorityPace(t *testing.T) {
	const far = 100 * time.Millisecond
	servers := masters(t, 3)
	c := farClient(t, servers, far)
	ctx := ctxTimeout(t, 10*time.Second)
	for i := range 3 {
		start := time.Now()
		l, err := c.Acquire(ctx, "near")
		require.NoError(t, err)
		acquired := time.Since(start)
		start = time.Now()
		require.NoError(t, l.Release(ctx))
		released := time.Since(start)
		t.Logf("cycle %d: acquire %v, release %v (far master %v)", i+1, acquired, released, far)
		assert.Less(t, acquired, far/2, "Acquire waited for the far master")
		assert.Less(t, released, far/2, "Release waited for the far master")
	}
	noLockKeys(t, servers) // the far master's key too, in the background
}

// A Release that returns at a majority still reports a lease lost before
// it: when its keys are gone on a majority of the near masters, at once;
// when gone on one near master only, it waits for the far master's word.
func TestReleaseAtMajorityReportsLoss(t *testing.T) {
	const far = 100 * time.Millisecond
	servers := masters(t, 3)
	c := farClient(t, servers, far)
	ctx := ctxTimeout(t, 10*time.Second)

	l, err := c.Acquire(ctx, "lost")
	require.NoError(t, err)
	heldValue(t, servers, "lost")
	for _, s := range servers[:2] {
		_, err := s.Do("DEL", "distlock:lost")
		require.NoError(t, err)
	}
	err = l.Release(ctx)
	require.True(t, errors.Is(err, distlock.ErrLeaseLost), "Release of keys gone on masters 0 and 1: %v; want ErrLeaseLost", err)

	l, err = c.Acquire(ctx, "half")
	require.NoError(t, err)
	heldValue(t, servers, "half")
	_, err = servers[0].Do("DEL", "distlock:half")
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, l.Release(ctx), "keys gone on master 0 alone: still held by a majority")
	assert.GreaterOrEqual(t, time.Since(start), far/2, "Release decided without the far master's word")
	noLockKeys(t, servers)
}

// A local handoff is decided at the fastest majority too: it does not
// wait for the far master's answer to the acquire.
func TestHandoffAtMajorityPace(t *testing.T) {
	const far = 100 * time.Millisecond
	servers := masters(t, 3)
	c := farClient(t, servers, far)
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := c.Acquire(ctx, "relay")
	require.NoError(t, err)
	for i := range 3 {
		got := acquireLater(t, ctx, c, "relay")
		waitQueued(t, c, "relay")
		start := time.Now()
		require.NoError(t, l.Release(ctx))
		l = take(t, got, "next goroutine")
		took := time.Since(start)
		t.Logf("handoff %d: %v (far master %v)", i+1, took, far)
		assert.Less(t, took, far/2, "the handoff waited for the far master")
	}
	require.NoError(t, l.Release(ctx))
	noLockKeys(t, servers)
}

// Right after a Release that returned at a majority, this Client's next
// acquire is not refused by its own released key where that delete is
// still on its way: with master 0 cut meanwhile, TryAcquire needs master
// 2, whose delete waits for the far answer to the old acquire.
func TestReleaseThenTryAcquireWithMasterDown(t *testing.T) {
	const far = 100 * time.Millisecond
	servers := masters(t, 3)
	p0, err := redistest.NewProxy(servers[0].Addr())
	require.NoError(t, err)
	t.Cleanup(func() { p0.Close() })
	p2, err := redistest.NewProxy(servers[2].Addr())
	require.NoError(t, err)
	t.Cleanup(func() { p2.Close() })
	p2.SetLatency(far)
	nodes := redistest.URLs(servers)
	nodes[0], nodes[2] = p0.URL(), p2.URL()
	c, err := distlock.New(distlock.Config{Nodes: nodes})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx := ctxTimeout(t, 10*time.Second)

	l, err := c.TryAcquire(ctx, "again")
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx))
	p0.Cut()
	l, err = c.TryAcquire(ctx, "again")
	require.NoError(t, err, "TryAcquire over masters 1 and 2 right after Release, master 0 cut")
	require.NoError(t, l.Release(ctx))
	p0.Restore()
	noLockKeys(t, servers)
}
