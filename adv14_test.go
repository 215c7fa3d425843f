package distlock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Fourteenth adversarial review: loss events against a lease still
// waiting for a master's answer to its acquire (seenGone settling it
// inline on the event reader, or leaving it to goneLocked's goroutine),
// and against the acquire's NOSCRIPT reload under FenceReplicas, where
// acquire.lua and WAIT go on a pooled connection of their own while the
// key-change messages come on the pipelined one.

// adv14Client is adv12Client with a per-master timeout of 3 s: a master
// 1.5 s late is a straggler, not a failure.
func adv14Client(t *testing.T, servers []*redistest.Server) (*distlock.Client, []*redistest.Proxy) {
	t.Helper()
	proxies := redistest.ProxyN(t, servers)
	nodes := make([]string, len(proxies))
	for i, p := range proxies {
		nodes[i] = p.URL()
	}
	c, err := distlock.New(distlock.Config{Nodes: nodes, TTL: eventTTL, NodeTimeout: 3 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, proxies
}

// TestAdv14SeenGoneWithStraggler: lease l's master 2 answers late (its
// acquire ran there at once; the proxy delays the answers). Another
// program deletes l's key on master 0: the read there (seenGone) either
// settles l inline, its last answer buffered ("buffered", 200 ms late,
// read 500 ms after), or leaves the settle to a goroutine ("in-flight",
// 1.5 s late). Neither may hold up master 0's reader: lease m, deleted on
// masters 0 and 1 next, is lost at once. Nor keep l: deleted on a second
// master (1 while master 2 still owes its answer; 2 once it answered),
// l is lost at once, the acquire's own message on master 2 not taken for
// the delete's.
func TestAdv14SeenGoneWithStraggler(t *testing.T) {
	for _, tc := range []struct {
		name    string
		latency time.Duration
		wait    time.Duration // after the acquire, before master 0's delete
		second  int           // the second master l's key goes from
	}{
		{"buffered", 200 * time.Millisecond, 500 * time.Millisecond, 2},
		{"in-flight", 1500 * time.Millisecond, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, other := "adv14-l-"+tc.name, "adv14-m-"+tc.name
			key, okey := "distlock:"+name, "distlock:"+other
			servers := masters(t, 3)
			c, proxies := adv14Client(t, servers)
			ctx := ctxTimeout(t, 15*time.Second)
			m, err := c.TryAcquire(ctx, other) // connections up, tracking on
			require.NoError(t, err)

			proxies[2].SetLatency(tc.latency)
			began := time.Now()
			l, err := c.TryAcquire(ctx, name)
			require.NoError(t, err)
			require.Less(t, time.Since(began), tc.latency, "master 2 still to answer")
			v, err := servers[0].Do("GET", key)
			require.NoError(t, err)
			adv12Holds(t, servers[2], key, v)
			time.Sleep(tc.wait)

			_, err = servers[0].Do("DEL", key)
			require.NoError(t, err)
			time.Sleep(50 * time.Millisecond)
			require.NoError(t, l.Err(), "masters 1 and 2 hold l")

			changed := time.Now()
			for _, s := range servers[:2] {
				_, err = s.Do("DEL", okey)
				require.NoError(t, err)
			}
			adv12Lost(t, m, changed, "m deleted on masters 0 and 1, master 0's reader busy with l")

			changed = time.Now()
			_, err = servers[tc.second].Do("DEL", key)
			require.NoError(t, err)
			adv12Lost(t, l, changed, "l deleted on masters 0 and "+[]string{"0", "1", "2"}[tc.second])
			if tc.second == 1 {
				require.Less(t, time.Since(began), tc.latency, "lost before master 2 answered")
			}
			proxies[2].SetLatency(0)
		})
	}
}

// TestAdv14NoScriptFenceReplicas: every master lost its scripts (SCRIPT
// FLUSH, as after a restart) and FenceReplicas is 1. acquire.lua goes by
// digest with WAIT on a pooled connection, is refused NOSCRIPT, is loaded
// and sent again: the lease is granted everywhere. Its own writes' messages
// come on the pipelined connection, in no set order with the answers: none
// may end it, and none may be taken for another program's delete, which
// on two masters ends it at once.
func TestAdv14NoScriptFenceReplicas(t *testing.T) {
	primaries, _ := withReplicas(t, 3)
	c := newClient(t, primaries, distlock.Config{FenceReplicas: 1, TTL: eventTTL})
	ctx := ctxTimeout(t, 20*time.Second)
	warm, err := c.TryAcquire(ctx, "adv14-warm") // connections up, tracking on
	require.NoError(t, err)
	require.NoError(t, warm.Release(ctx))
	for round := range 3 {
		for _, p := range primaries {
			_, err := p.Do("SCRIPT", "FLUSH")
			require.NoError(t, err)
		}
		name := "adv14-noscript"
		key := "distlock:" + name
		l, err := c.TryAcquire(ctx, name)
		require.NoError(t, err, "round %d", round)
		// TryAcquire returns at a majority: master 0 may still be to run
		// the acquire, so its value is read once it has.
		var v string
		eventually(t, key+" set on master 0", func() bool {
			v = mustGet(t, primaries[0], key)
			return v != ""
		})
		for _, p := range primaries {
			adv12Holds(t, p, key, v)
		}
		time.Sleep(300 * time.Millisecond)
		require.NoError(t, l.Err(), "round %d: its own writes only", round)
		changed := time.Now()
		for _, p := range primaries[round%3 : round%3+1] {
			_, err = p.Do("DEL", key)
			require.NoError(t, err)
		}
		_, err = primaries[(round+1)%3].Do("DEL", key)
		require.NoError(t, err)
		adv12Lost(t, l, changed, "deleted on two masters after a NOSCRIPT reload")
		for _, p := range primaries {
			_, err = p.Do("DEL", key)
			require.NoError(t, err)
		}
	}
}

func mustGet(t *testing.T, s *redistest.Server, key string) string {
	t.Helper()
	v, err := s.Do("GET", key)
	require.NoError(t, err)
	return v
}

// TestAdv14OverwrittenWithAnotherType: another program overwrites the
// lease's key on two masters of three with a value of another type (RENAME
// of a hash onto it: one change, one message). The README's "overwritten"
// covers it: a majority no longer holds the lease, which must end at once.
// The read after the message gets WRONGTYPE, a Redis error; readPart
// took every Redis error for an ACL refusing GET and left the lease to its
// renewals, which get a script error from renew.lua's GET there.
func TestAdv14OverwrittenWithAnotherType(t *testing.T) {
	const name = "adv14-type"
	key := "distlock:" + name
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{TTL: eventTTL})
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := c.TryAcquire(ctx, name)
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the acquire's own messages are in
	changed := time.Now()
	for _, s := range servers[:2] {
		_, err := s.Do("HSET", "adv14-hash", "f", "v")
		require.NoError(t, err)
		_, err = s.Do("RENAME", "adv14-hash", key)
		require.NoError(t, err)
	}
	adv12Lost(t, l, changed, "key overwritten with a hash on masters 0 and 1")
}

// TestAdv14ReadAnsweredBusy: another program deletes the lease's key on
// masters 0 and 1, and then keeps master 0 busy with a long script (as a
// slow script of its own would). Master 0's message comes 300 ms late
// (its proxy), and the read it asks for reaches master 0 while the script
// runs: BUSY, a Redis error, which readPart took for an ACL refusing GET
// and never read again. Master 0 no longer holds the lease, nor does
// master 1: it must end once master 0 answers again, not at its renewal.
func TestAdv14ReadAnsweredBusy(t *testing.T) {
	const name = "adv14-busy"
	key := "distlock:" + name
	servers := masters(t, 3)
	c, proxies := adv14Client(t, servers)
	ctx := ctxTimeout(t, 15*time.Second)
	_, err := servers[0].Do("CONFIG", "SET", "busy-reply-threshold", "20")
	require.NoError(t, err)
	l, err := c.TryAcquire(ctx, name)
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the acquire's own messages are in

	proxies[0].SetLatency(300 * time.Millisecond)
	changed := time.Now()
	for _, s := range servers[:2] {
		_, err := s.Do("DEL", key)
		require.NoError(t, err)
	}
	busy := make(chan error, 1)
	go func() {
		_, err := servers[0].Do("EVAL", `local s = redis.call('TIME')
while true do
  local n = redis.call('TIME')
  if (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 800000 then break end
end
return 1`, "0")
		busy <- err
	}()
	require.NoError(t, <-busy)
	proxies[0].SetLatency(0)
	select {
	case <-l.Done():
		require.ErrorIs(t, l.Err(), distlock.ErrLeaseLost)
		t.Logf("lost %v after the deletes: %v", time.Since(changed).Round(time.Millisecond), l.Err())
	case <-time.After(time.Until(changed.Add(800*time.Millisecond + 2*eventWithin))):
		t.Fatalf("Done still open %v after the deletes on masters 0 and 1 (Err %v): master 0's read, answered BUSY, never made again", time.Since(changed).Round(time.Millisecond), l.Err())
	}
}
