package distlock_test

import (
	"context"
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
