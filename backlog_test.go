package distlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// While the renewals of a held lease go unanswered on a majority of
// masters, a new acquire waits before it sends anything (backlog.go): it
// would only queue behind them. Once they are answered, it goes on.
func TestAcquireWaitsForLateRenewals(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{TTL: 6 * time.Second})
	ctx := context.Background()
	held, err := c.Acquire(ctx, "backlog-held")
	require.NoError(t, err)
	defer held.Release(ctx)

	// Its renewal goes out a third of the TTL after the acquire, and is
	// late a tenth of the TTL after that.
	redistest.PauseUntilEnd(t, servers[1], servers[2])
	deadline := time.Now().Add(4 * time.Second)
	for !distlock.AcquiresWait(c) {
		require.True(t, time.Now().Before(deadline), "acquires never waited for the late renewal")
		time.Sleep(5 * time.Millisecond)
	}

	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = c.TryAcquire(tctx, "backlog-new")
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "renewals of this Client's leases were late on masters 1 (")
	// Nothing was sent: master 0, which answers, never saw the lock key.
	n, err := servers[0].Do("EXISTS", "distlock:backlog-new")
	require.NoError(t, err)
	assert.Equal(t, "0", n, "the waiting acquire sent its script")

	// Without a deadline, TryAcquire waits no longer than it would have
	// for the masters' answers (the per-master timeout).
	_, err = c.TryAcquire(ctx, "backlog-new")
	assert.ErrorIs(t, err, distlock.ErrNoQuorum)
	assert.ErrorContains(t, err, "renewals of this Client's leases were late")
	// Acquire waits as long as its context lets it.
	actx, acancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer acancel()
	_, err = c.Acquire(actx, "backlog-new")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "renewals of this Client's leases were late")
	n, err = servers[0].Do("EXISTS", "distlock:backlog-new")
	require.NoError(t, err)
	assert.Equal(t, "0", n, "a waiting acquire sent its script")

	for _, s := range servers[1:] {
		require.NoError(t, s.Resume())
	}
	eventually(t, "acquires to go on once the renewals are answered", func() bool { return !distlock.AcquiresWait(c) })
	l, err := c.TryAcquire(ctx, "backlog-new")
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx))
}
