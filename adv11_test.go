package distlock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
)

// adv11: adversarial tests of owner and metadata in handoffs (owner.go,
// handoff.go successor/adopt).

// A wrong guess, repeated: each waiter refuses the handed lease and
// acquires anew. Tokens must rise across every refuse-and-reacquire, each
// lease must still hear of its loss at once (the discard's unexpect and
// the new attempt's expect on one key), and no key may be left behind.
func TestAdv11WrongGuessTokensAndLoss(t *testing.T) {
	const name = "adv11/guess"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{Owner: "o|w%n er", TTL: 5 * time.Second})
	ctx := ctxTimeout(t, 30*time.Second)
	cur, err := c.Acquire(ctx, name, distlock.WithMetadata("m|0%"))
	require.NoError(t, err)
	last := cur.Token()
	for i := range 5 {
		md := "m|" + string(rune('a'+i)) + " %41"
		got := acquireLater(t, ctx, c, name, distlock.WithMetadata(md))
		waitQueued(t, c, name)
		distlock.WantMetadata(c, name, "wrong guess", 3)
		require.NoError(t, cur.Release(ctx))
		distlock.WantMetadata(c, name, "wrong guess", -3)
		cur = take(t, got, "waiter")
		require.Equal(t, md, cur.Metadata())
		require.Greater(t, cur.Token(), last, "token after refuse-and-reacquire %d", i)
		last = cur.Token()
		// A majority, not every master: where the discarded handed value
		// was still being deleted, the new acquire was refused, and that
		// master holds nothing of it until its next acquire.
		st := majorityHeldStatus(t, c, name)
		require.Equal(t, md, st.Metadata)
		require.Equal(t, "o|w%n er", st.Owner)
	}
	// Loss events still work for a lease acquired after a discard.
	for _, s := range servers[:2] {
		_, err := s.Do("DEL", "distlock:"+name)
		require.NoError(t, err)
	}
	select {
	case <-cur.Done():
	case <-time.After(time.Second):
		t.Fatal("lease acquired after a discarded handoff did not hear of its loss within 1s")
	}
	require.Error(t, cur.Err())
	_ = cur.Release(ctx)
	noLockKeysEventually(t, servers)
}

// TryAcquire racing a waiter for a turn that carries a handed lease of
// other metadata: whoever takes it, exactly one lease at a time, rising
// tokens, no key left.
func TestAdv11TryAcquireTakesWrongHandoff(t *testing.T) {
	const name = "adv11/try"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{TTL: 5 * time.Second})
	ctx := ctxTimeout(t, 30*time.Second)
	last := int64(0)
	for i := range 20 {
		a, err := c.Acquire(ctx, name, distlock.WithMetadata("a"))
		require.NoError(t, err)
		require.Greater(t, int64(a.Token()), last)
		last = int64(a.Token())
		got := acquireLater(t, ctx, c, name, distlock.WithMetadata("w"))
		waitQueued(t, c, name)
		done := make(chan *distlock.Lease, 1)
		go func() {
			for {
				l, err := c.TryAcquire(ctx, name, distlock.WithMetadata("t"))
				if err == nil {
					done <- l
					return
				}
				if ctx.Err() != nil {
					done <- nil
					return
				}
			}
		}()
		require.NoError(t, a.Release(ctx))
		w := take(t, got, "waiter")
		var tl *distlock.Lease
		select {
		case tl = <-done:
			// TryAcquire won first: the waiter must not hold meanwhile.
			require.NoError(t, w.Err(), "iteration %d", i)
		case <-time.After(50 * time.Millisecond):
		}
		_ = tl
		require.Greater(t, int64(w.Token()), last)
		last = int64(w.Token())
		require.NoError(t, w.Release(ctx))
		tl = <-done
		require.NotNil(t, tl)
		require.Greater(t, int64(tl.Token()), last)
		last = int64(tl.Token())
		require.NoError(t, tl.Release(ctx))
		noLockKeysEventually(t, servers)
	}
}

// majorityHeldStatus waits until a majority of masters hold name with one
// value, and returns the Status.
func majorityHeldStatus(t *testing.T, c *distlock.Client, name string) distlock.Status {
	t.Helper()
	var st distlock.Status
	eventually(t, "a majority holds "+name, func() bool {
		var err error
		st, err = c.Status(t.Context(), name)
		return err == nil && st.State == distlock.StateHeld
	})
	return st
}
