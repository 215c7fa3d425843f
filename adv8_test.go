package distlock_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Eighth adversarial review: loss events (lease_events.go). The claim
// under test (README, "What it guarantees"): a lease whose keys a majority
// of masters no longer holds ends within milliseconds, not at its next
// renewal. eventTTL (30 s) puts the first renewal 10 s away, so a loss seen
// within eventWithin was seen by the key events.

// adv8Done fails the test unless l is lost within eventWithin.
func adv8Done(t *testing.T, l *distlock.Lease, what string) {
	t.Helper()
	select {
	case <-l.Done():
		require.ErrorIs(t, l.Err(), distlock.ErrLeaseLost)
	case <-time.After(eventWithin):
		t.Fatalf("%s: Done still open %v later (Err %v); want the loss heard from the key events", what, eventWithin, l.Err())
	}
}

// TestAdv8LossWithRefusingMaster: a lease acquired with a bare majority,
// the third master refusing it (another program's value there, or a
// released key whose delete is still on its way: docs/design.md,
// Release). One granting master then loses the key: only one of three
// holds it. The event path counted only the masters *seen* gone (1 of 3,
// not more than N−quorum), as if the refusing master still held the key,
// and the loss waited for the renewal.
func TestAdv8LossWithRefusingMaster(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{TTL: eventTTL})
	ctx := ctxTimeout(t, 10*time.Second)
	_, err := servers[2].Do("SET", "distlock:adv8-refused", "another-program", "PX", "60000")
	require.NoError(t, err)
	l, err := c.TryAcquire(ctx, "adv8-refused")
	require.NoError(t, err, "masters 0 and 1 grant")

	_, err = servers[1].Do("DEL", "distlock:adv8-refused")
	require.NoError(t, err)
	adv8Done(t, l, "key deleted on master 1, master 2 held by another value")
	for _, s := range servers[:2] {
		s.Do("DEL", "distlock:adv8-refused")
	}
	servers[2].Do("DEL", "distlock:adv8-refused")
}

// adv8RaiseCounter sets the fence counter of name's slot on server s to
// v, so that the next acquire's counters differ and it writes them back
// (fencing.go): a second round trip before the lease is handed out.
func adv8RaiseCounter(t *testing.T, c *distlock.Client, servers []*redistest.Server, s *redistest.Server, name string) {
	t.Helper()
	ctx := ctxTimeout(t, 5*time.Second)
	l, err := c.Acquire(ctx, name) // creates the counter
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx))
	noLockKeys(t, servers)
	keys, err := s.Do("KEYS", "distlock:fence:{*")
	require.NoError(t, err)
	var fence []string
	for _, k := range strings.Split(keys, "\n") {
		if k != "" && !strings.Contains(k, "dead:") && !strings.Contains(k, "left:") {
			fence = append(fence, k)
		}
	}
	require.Len(t, fence, 1, "one fence counter: %q", keys)
	_, err = s.Do("SET", fence[0], "1000")
	require.NoError(t, err)
}

// adv8DeleteOnSight deletes key on each of servers, directly, as soon as
// it holds a value other than not (polled every millisecond); it returns
// a function that waits until it has deleted on every one.
func adv8DeleteOnSight(t *testing.T, servers []*redistest.Server, key, not string) (wait func()) {
	var wg sync.WaitGroup
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				v, err := s.Do("GET", key)
				if err == nil && v != "" && v != not {
					s.Do("DEL", key)
					t.Logf("deleted %s=%q on %s", key, v, s.Addr())
					return
				}
				time.Sleep(time.Millisecond)
			}
			t.Errorf("%s never set on %s", key, s.Addr())
		}()
	}
	return wg.Wait
}

// TestAdv8LossBeforeTracked: the keys are deleted on a majority after the
// acquire set them and before the lease is registered with the key events
// (Client.track): here during the fence write-back's round trip, masters
// 1 and 2 answering 150 ms late. The masters' messages name the key while
// byKey holds no lease for it, and are dropped; nothing reads the key
// again, and the lease, held on one master of three, lives on until its
// renewal.
func TestAdv8LossBeforeTracked(t *testing.T) {
	const name = "adv8-untracked"
	servers := masters(t, 3)
	proxies := redistest.ProxyN(t, servers)
	nodes := make([]string, len(proxies))
	for i, p := range proxies {
		nodes[i] = p.URL()
	}
	c, err := distlock.New(distlock.Config{Nodes: nodes, TTL: eventTTL, NodeTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	adv8RaiseCounter(t, c, servers, servers[0], name)

	// Master 0 answers at once, with its counter far ahead: the acquire
	// is decided with it and one of the slow masters, whose counters are
	// lower, so fence writes back to them, 150 ms away.
	for _, p := range proxies[1:] {
		p.SetLatency(150 * time.Millisecond)
	}
	deleted := adv8DeleteOnSight(t, servers[1:], "distlock:"+name, "")
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := c.TryAcquire(ctx, name)
	require.NoError(t, err)
	deleted()
	for _, p := range proxies {
		p.SetLatency(0)
	}
	adv8Done(t, l, "keys deleted on masters 1 and 2 before the lease was tracked")
}

// TestAdv8LossBeforeAdopted: the same for a local handoff. handoff.lua
// swaps the value on every master, the new value is deleted on a
// majority during the handoff's fence write-back, before the next
// goroutine adopts the lease (adopt → track): the messages are dropped,
// the old lease having left byKey when it ended.
func TestAdv8LossBeforeAdopted(t *testing.T) {
	const name = "adv8-handoff"
	servers := masters(t, 3)
	proxies := redistest.ProxyN(t, servers)
	nodes := make([]string, len(proxies))
	for i, p := range proxies {
		nodes[i] = p.URL()
	}
	c, err := distlock.New(distlock.Config{Nodes: nodes, TTL: eventTTL, NodeTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx := ctxTimeout(t, 10*time.Second)

	l, err := c.Acquire(ctx, name)
	require.NoError(t, err)
	// Acquire returns at a majority: with master 1's SET still on its way,
	// old would be "" and the deleters would take the first lease's keys.
	heldEverywhere(t, servers, name)
	old, err := servers[1].Do("GET", "distlock:"+name)
	require.NoError(t, err)
	got := acquireAsync(t, ctx, c, name)
	time.Sleep(100 * time.Millisecond) // the waiter queues locally
	// handoff.lua INCRs every master's counter: master 0's, far ahead,
	// makes the handoff write it back.
	keys, err := servers[0].Do("KEYS", "distlock:fence:{*")
	require.NoError(t, err)
	for _, k := range strings.Split(keys, "\n") {
		if k != "" && !strings.Contains(k, "dead:") && !strings.Contains(k, "left:") {
			_, err = servers[0].Do("SET", k, "1000")
			require.NoError(t, err)
		}
	}

	// Master 0 answers at once, with its counter far ahead: the acquire
	// is decided with it and one of the slow masters, whose counters are
	// lower, so fence writes back to them, 150 ms away.
	for _, p := range proxies[1:] {
		p.SetLatency(150 * time.Millisecond)
	}
	deleted := adv8DeleteOnSight(t, servers[1:], "distlock:"+name, old)
	require.NoError(t, l.Release(ctx))
	l2 := <-got
	require.NotNil(t, l2)
	deleted()
	for _, p := range proxies {
		p.SetLatency(0)
	}
	adv8Done(t, l2, "handed-over keys deleted on masters 1 and 2 before the lease was adopted")
}
