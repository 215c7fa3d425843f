package distlock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Twelfth adversarial review: the echo of a lease's own acquire (or
// handoff) write is not read back (lease_events.go: readNew's echo marks,
// late/countLate/settledLate for the masters still to answer). A message
// swallowed as an echo that was in fact another program's change would
// leave a lease that a majority no longer holds alive until its renewal
// (eventTTL/3 = 10 s away), against the README's "ends within
// milliseconds". These tests hold the two interleavings where that came
// closest: a straggler's own message and a foreign change on the same
// master both arriving after the lease was tracked, once for an acquire
// and once for a local handoff whose old lease was itself straggling.

const adv12Latency = 200 * time.Millisecond

// adv12Client returns a Client over proxies in front of servers, with a
// per-master timeout far above adv12Latency (a slow master is a
// straggler, not a failure).
func adv12Client(t *testing.T, servers []*redistest.Server) (*distlock.Client, []*redistest.Proxy) {
	t.Helper()
	proxies := redistest.ProxyN(t, servers)
	nodes := make([]string, len(proxies))
	for i, p := range proxies {
		nodes[i] = p.URL()
	}
	c, err := distlock.New(distlock.Config{Nodes: nodes, TTL: eventTTL, NodeTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, proxies
}

// adv12Lost fails the test unless l ends as lost within eventWithin of
// since.
func adv12Lost(t *testing.T, l *distlock.Lease, since time.Time, what string) {
	t.Helper()
	select {
	case <-l.Done():
		require.ErrorIs(t, l.Err(), distlock.ErrLeaseLost)
		t.Logf("%s: lost %v after the change: %v", what, time.Since(since).Round(time.Millisecond), l.Err())
	case <-time.After(time.Until(since.Add(eventWithin))):
		t.Fatalf("%s: Done still open %v after the change (Err %v); want the loss heard from the key events, not the renewal", what, eventWithin, l.Err())
	}
}

// adv12Holds waits until s holds key with value v (a straggler's command
// reached it: the proxy delays only the answers).
func adv12Holds(t *testing.T, s *redistest.Server, key, v string) {
	t.Helper()
	eventually(t, key+" set on "+s.Addr(), func() bool {
		got, err := s.Do("GET", key)
		return err == nil && got == v
	})
}

// TestAdv12StragglerEchoThenForeignChange: master 2 answers 200 ms late,
// so the acquire returns at masters 0 and 1 with master 2 still to
// answer (late). Its acquire ran there at once (only the answers are
// delayed), and another program then overwrites the key there and
// deletes it on master 0: a majority (0 and 2) no longer holds the lease.
// Master 2's stream brings, in order, the reply, the acquire's own
// message and the overwrite's.
//
// "straggler-first": master 2's messages are in before master 0's key
// goes, settle not yet run: countLate swallows the first (the echo) and
// must read the second (swallowing two fails this subtest). "together":
// master 0's loss makes goneLocked settle master 2 at once, before or
// after its messages are handled: settledLate marks the echo with none
// counted, and must not with one (marking it with one fails this
// subtest now and then). Either mistake leaves the lease to its renewal
// 10 s later.
func TestAdv12StragglerEchoThenForeignChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		// wait, when not 0, passes between the overwrite on master 2 and
		// the delete on master 0: master 2's messages are in (countLate
		// alone judges them, settle not yet run); with 0, master 0's
		// loss makes goneLocked settle master 2 first (settledLate).
		wait time.Duration
	}{
		{"together", 0},
		{"straggler-first", adv12Latency + 150*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "adv12-straggler-" + tc.name
			key := "distlock:" + name
			servers := masters(t, 3)
			c, proxies := adv12Client(t, servers)
			ctx := ctxTimeout(t, 10*time.Second)
			warm, err := c.TryAcquire(ctx, "adv12-warm") // connections up, tracking on
			require.NoError(t, err)
			require.NoError(t, warm.Release(ctx))

			proxies[2].SetLatency(adv12Latency)
			began := time.Now()
			l, err := c.TryAcquire(ctx, name)
			require.NoError(t, err)
			took := time.Since(began)
			require.Less(t, took, adv12Latency, "the acquire returns at masters 0 and 1, master 2 still to answer")
			v, err := servers[0].Do("GET", key)
			require.NoError(t, err)
			adv12Holds(t, servers[2], key, v) // the acquire ran on master 2; its answer is on its way

			_, err = servers[2].Do("SET", key, "another-program", "PX", "60000")
			require.NoError(t, err)
			time.Sleep(tc.wait)
			require.NoError(t, l.Err(), "one master of three lost: still held")
			changed := time.Now()
			_, err = servers[0].Do("DEL", key)
			require.NoError(t, err)
			adv12Lost(t, l, changed, "key overwritten on straggling master 2 after its grant, deleted on master 0")
			proxies[2].SetLatency(0)
			servers[2].Do("DEL", key)
		})
	}
}

// TestAdv12HandoffFromStragglerThenForeignChange: a lease whose master 2
// answers 200 ms late is released to a waiting goroutine of the same
// Client. handoff.lua goes to masters 0 and 1 at once and to master 2
// once the old acquire's answer is in; the next lease is adopted (and
// tracked, with the messages counted since the handoff began) before
// master 2 has answered either. Master 2 then sends, after the lease was
// tracked or around it: the old acquire's own message, the handoff's, and
// another program's overwrite; master 0's key is deleted too. Whatever
// is taken for the lease's own write (the old lease's message counted for
// the new one, the handoff's late message), the overwrite must be read.
func TestAdv12HandoffFromStragglerThenForeignChange(t *testing.T) {
	const name = "adv12-handoff"
	key := "distlock:" + name
	servers := masters(t, 3)
	c, proxies := adv12Client(t, servers)
	ctx := ctxTimeout(t, 10*time.Second)
	warm, err := c.TryAcquire(ctx, "adv12-warm")
	require.NoError(t, err)
	require.NoError(t, warm.Release(ctx))

	proxies[2].SetLatency(adv12Latency)
	l, err := c.TryAcquire(ctx, name)
	require.NoError(t, err)
	old, err := servers[0].Do("GET", key)
	require.NoError(t, err)
	got := acquireAsync(t, ctx, c, name)
	time.Sleep(20 * time.Millisecond) // the waiter queues locally
	began := time.Now()
	require.NoError(t, l.Release(ctx))
	l2 := <-got
	require.NotNil(t, l2)
	t.Logf("handed over %v after Release began", time.Since(began).Round(time.Millisecond))
	next, err := servers[0].Do("GET", key)
	require.NoError(t, err)
	require.NotEqual(t, old, next, "handoff.lua swapped the value on master 0")
	adv12Holds(t, servers[2], key, next) // handoff.lua ran on master 2; its answer is on its way

	changed := time.Now()
	_, err = servers[2].Do("SET", key, "another-program", "PX", "60000")
	require.NoError(t, err)
	_, err = servers[0].Do("DEL", key)
	require.NoError(t, err)
	adv12Lost(t, l2, changed, "handed-over key overwritten on master 2 after the handoff, deleted on master 0")
	proxies[2].SetLatency(0)
	servers[2].Do("DEL", key)
}

// TestAdv12EchoLostWithConnection: master 2's answer to the acquire and
// the acquire's own message are still held back in its proxy when the
// connection is cut (rueidis: OnInvalidations(nil)); the new connection
// never sends that message. Counting on it (late, or an echo mark)
// would swallow the first message of the new connection: here another
// program's overwrite of the key on master 2, which with master 0's
// delete leaves the lease on one master of three.
func TestAdv12EchoLostWithConnection(t *testing.T) {
	const name = "adv12-cut"
	key := "distlock:" + name
	servers := masters(t, 3)
	c, proxies := adv12Client(t, servers)
	ctx := ctxTimeout(t, 10*time.Second)
	warm, err := c.TryAcquire(ctx, "adv12-warm")
	require.NoError(t, err)
	require.NoError(t, warm.Release(ctx))

	proxies[2].SetLatency(adv12Latency)
	l, err := c.TryAcquire(ctx, name)
	require.NoError(t, err)
	v, err := servers[0].Do("GET", key)
	require.NoError(t, err)
	adv12Holds(t, servers[2], key, v)
	proxies[2].Cut() // the answer and the message, on their way, are lost
	proxies[2].SetLatency(0)
	proxies[2].Restore()
	time.Sleep(300 * time.Millisecond) // reconnected; master 2 read again (it holds the key)
	require.NoError(t, l.Err(), "every master holds the key")

	changed := time.Now()
	_, err = servers[2].Do("SET", key, "another-program", "PX", "60000")
	require.NoError(t, err)
	_, err = servers[0].Do("DEL", key)
	require.NoError(t, err)
	adv12Lost(t, l, changed, "key overwritten on master 2 over a new connection, deleted on master 0")
	servers[2].Do("DEL", key)
}
