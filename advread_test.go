package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdvReadExpiredErrorOmitsGoneMaster: the error of a lease whose
// validity ran out "names the masters that failed its renewals and why"
// (3cfe69f, ErrLeaseLost's godoc). A master whose key expired early (here
// deleted) answers the renewal "gone": answered clears its renewErr, its
// ack is 0 and no renewal is in flight there, so expiredErrorLocked leaves
// it out. With master 1's key gone (one gone master is no loss of a
// majority) and master 2 paused, the lease runs out and its Err names
// master 2 alone, as if master 1 had renewed it.
func TestAdvReadExpiredErrorOmitsGoneMaster(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events bool
	}{{"renewal finds it gone", false}, {"key-change message", true}} {
		t.Run(tc.name, func(t *testing.T) {
			servers := masters(t, 3)
			c := newClient(t, servers, distlock.Config{DisableLossEvents: !tc.events})
			l, err := c.Acquire(t.Context(), "expired-gone", distlock.WithTTL(time.Second))
			require.NoError(t, err)
			heldEverywhere(t, servers, "expired-gone")
			_, err = servers[1].Do("DEL", "distlock:expired-gone")
			require.NoError(t, err)
			// Let master 1's renewal (or the key-change read) find the key
			// gone before master 2 stops answering.
			time.Sleep(500 * time.Millisecond)
			require.NoError(t, l.Err(), "one gone master of three loses no majority")
			redistest.PauseUntilEnd(t, servers[2])
			msg := lostWithin(t, l, 3*time.Second, "master 1's key went and master 2 paused").Error()
			assert.Contains(t, msg, "its validity ran out")
			assert.Contains(t, msg, "master 2: ")
			assert.Contains(t, msg, "master 1", "master 1's renewal found the key gone: it failed the lease, and the error leaves it out")
		})
	}
}

// TestAdvReadReleaseEndedCtxFromAnotherLease: Release's godoc (178b739)
// says that with a ctx that has already ended, Release "returns at once,
// with a *QuorumError that says the deletes were not confirmed ... and
// matches ctx's error"; only a ctx that ended because *this* lease did is
// waited past. awaitDeletes decides that with errors.Is(context.Cause(ctx),
// context.Cause(l.ctx)), and a released lease's cause is the shared
// sentinel ErrReleased: a ctx from another lease's Context, ended because
// that lease was released before the call, passes as this lease's:
// Release waits for the masters' answers (as long as they take, up to
// ctx's deadline if any) and returns nil, not the unconfirmed
// *QuorumError matching context.Canceled.
func TestAdvReadReleaseEndedCtxFromAnotherLease(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	a, err := c.Acquire(t.Context(), "ended-a")
	require.NoError(t, err)
	b, err := c.Acquire(t.Context(), "ended-b")
	require.NoError(t, err)
	heldEverywhere(t, servers, "ended-b")

	actx, cancel := a.Context(context.Background())
	defer cancel()
	require.NoError(t, a.Release(context.Background()))
	<-actx.Done()
	require.ErrorIs(t, context.Cause(actx), distlock.ErrReleased)
	require.Error(t, actx.Err(), "ctx has ended before b's Release is called")

	start := time.Now()
	err = b.Release(actx)
	took := time.Since(start)
	t.Logf("Release took %v: %v", took, err)
	var qe *distlock.QuorumError
	assert.ErrorAs(t, err, &qe, "a Release whose ctx had already ended returns an unconfirmed *QuorumError")
	assert.ErrorIs(t, err, context.Canceled, "and matches ctx's error")
}

// The same, with b's own Context nested around a's: once a is released,
// the context has ended (cause ErrReleased, from a) and carries b, but it
// did not end because b did. b's Release must not take it for its own
// ended context and wait for the deletes: it returns at once, unconfirmed
// (an adversarial read of endedWith).
func TestAdvReadReleaseNestedCtxOfAnotherLease(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	a, err := c.Acquire(t.Context(), "nested-a")
	require.NoError(t, err)
	b, err := c.Acquire(t.Context(), "nested-b")
	require.NoError(t, err)
	heldEverywhere(t, servers, "nested-b")

	actx, acancel := a.Context(context.Background())
	defer acancel()
	ctx, cancel := b.Context(actx)
	defer cancel()
	require.NoError(t, a.Release(context.Background()))
	<-ctx.Done()
	require.ErrorIs(t, context.Cause(ctx), distlock.ErrReleased)
	require.NoError(t, b.Err(), "b is still held when its Release is called")

	err = b.Release(ctx)
	t.Logf("Release: %v", err)
	var qe *distlock.QuorumError
	assert.ErrorAs(t, err, &qe, "a Release whose ctx had already ended returns an unconfirmed *QuorumError")
	assert.ErrorIs(t, err, context.Canceled, "and matches ctx's error")
	// The deletes went out all the same.
	noLockKeys(t, servers)
}

// TestReleaseCtxNestedInSameLeaseCtx: a context from l.Context nested in
// another of l's own (a helper that takes l.Context of the ctx Do gave it,
// say) ends because l did when l is released: Release waits past it, as
// its godoc says. The lease's end cancels its contexts in map order: when
// the inner one goes first, its cancel reaches the outer one at once, so
// the outer's end finds it already ended; endedWith must look at the
// inner one too (found by an adversarial read; it failed about half the
// time per lease).
func TestReleaseCtxNestedInSameLeaseCtx(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	for i := range 16 {
		name := fmt.Sprintf("same-nested-%d", i)
		l, err := c.Acquire(t.Context(), name)
		require.NoError(t, err)
		heldEverywhere(t, servers, name)
		inner, icancel := l.Context(context.Background())
		outer, ocancel := l.Context(inner)
		err = l.Release(outer)
		icancel()
		ocancel()
		require.NoError(t, err, "round %d: a ctx of l's own, ended by l's release, is waited past", i)
	}
}

// TestDoReleaseWithNestedLeaseCtx: the same through Do: fn takes
// l.Context of the ctx Do gave it (itself from l.Context) and releases
// with it.
func TestDoReleaseWithNestedLeaseCtx(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	for i := range 16 {
		err := c.Do(t.Context(), fmt.Sprintf("do-nested-%d", i), func(ctx context.Context, l *distlock.Lease) error {
			sub, cancel := l.Context(ctx)
			defer cancel()
			return l.Release(sub)
		})
		require.NoError(t, err, "round %d", i)
	}
}

// TestReleaseOuterLeaseWithInnerLeaseCtx: ctx is b's Context nested
// in a's; a's Release ends a, whose end ends ctx (cause ErrReleased, a's).
// ctx ended because a did, though ctx.Value gives b's leaseCtx: a's
// Release waits past it, as its godoc says (it returned at once,
// unconfirmed, before endedWith looked at the contexts around the
// innermost).
func TestReleaseOuterLeaseWithInnerLeaseCtx(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	a, err := c.Acquire(t.Context(), "outer-a")
	require.NoError(t, err)
	b, err := c.Acquire(t.Context(), "outer-b")
	require.NoError(t, err)
	heldEverywhere(t, servers, "outer-a")
	actx, acancel := a.Context(context.Background())
	defer acancel()
	ctx, cancel := b.Context(actx)
	defer cancel()
	err = a.Release(ctx)
	var qe *distlock.QuorumError
	assert.False(t, errors.As(err, &qe), "a's Release with a ctx that a's end ended waits past it: %v", err)
	require.NoError(t, err)
	require.NoError(t, b.Release(context.Background()))
}

// TestReleaseOuterWithInnerCtxEndedByInner: ctx is b's Context nested
// in a's. b is released first: ctx ends then (cause ErrReleased, b's),
// while a is still held. a.Release(ctx) is then called with a ctx that had
// already ended, not because a did: per Release's godoc it returns at
// once, with an unconfirmed *QuorumError matching ctx's error (as
// TestAdvReadReleaseNestedCtxOfAnotherLease, the mirror case). a's own end,
// inside this very Release, marks a's leaseCtx (the outer one) ended too,
// and the causes match (ErrReleased both): endedWith must go by the
// innermost leaseCtx that ended, b's (found by an adversarial read; it
// waited past ctx for the deletes, here a paused master's timeout).
func TestReleaseOuterWithInnerCtxEndedByInner(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	a, err := c.Acquire(t.Context(), "adv3-outer-a")
	require.NoError(t, err)
	b, err := c.Acquire(t.Context(), "adv3-outer-b")
	require.NoError(t, err)
	heldEverywhere(t, servers, "adv3-outer-a")

	actx, acancel := a.Context(context.Background())
	defer acancel()
	ctx, cancel := b.Context(actx)
	defer cancel()
	require.NoError(t, b.Release(context.Background()))
	<-ctx.Done()
	require.ErrorIs(t, context.Cause(ctx), distlock.ErrReleased)
	require.NoError(t, a.Err(), "a is still held when its Release is called")
	require.NoError(t, actx.Err(), "a's own context has not ended")

	// Two masters slow: the deletes cannot reach a majority soon.
	require.NoError(t, servers[1].Pause())
	require.NoError(t, servers[2].Pause())
	defer servers[1].Resume()
	defer servers[2].Resume()

	start := time.Now()
	err = a.Release(ctx)
	took := time.Since(start)
	t.Logf("Release: %v (after %v)", err, took)
	var qe *distlock.QuorumError
	assert.ErrorAs(t, err, &qe, "a Release whose ctx had already ended (by b's end) returns an unconfirmed *QuorumError")
	assert.ErrorIs(t, err, context.Canceled, "and matches ctx's error")
	assert.Less(t, took, 200*time.Millisecond, "and returns at once, not waiting past a ctx that a's end did not end")
}
