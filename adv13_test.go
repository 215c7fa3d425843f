package distlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Thirteenth adversarial review: a renewal's own write is counted while it
// is unanswered and judged by its answer (keyEvents.renewing, renewedOn):
// answered "renewed" with no message counted yet, the next message naming
// the key is taken for its echo and not read. A message that renewal
// never counts (its lease had ended, so that messages naming the key went
// to another lease, or to none) is taken as still to come: the mark then
// swallows the next message naming the key, another program's change
// included, on every master where it is left.

const adv13TTL = 6 * time.Second // renewal every 2 s: far from eventWithin

// adv13Client returns a Client over proxies in front of servers, with a
// per-master timeout far above the latencies the tests set.
func adv13Client(t *testing.T, servers []*redistest.Server) (*distlock.Client, []*redistest.Proxy) {
	t.Helper()
	proxies := redistest.ProxyN(t, servers)
	nodes := make([]string, len(proxies))
	for i, p := range proxies {
		nodes[i] = p.URL()
	}
	c, err := distlock.New(distlock.Config{Nodes: nodes, TTL: adv13TTL, NodeTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, proxies
}

// TestAdv13RenewalOfHandedOverLease: lease a and lease f (another name)
// are renewed in one batch, each master's answers 300 ms late (the
// proxies delay only answers: the renewals run at once). While the
// renewals are on their way back, a is released to a goroutine of the
// same Client waiting for its name: a ends, handoff.lua runs on every
// master, and the next lease b is adopted once a majority has answered;
// the messages of a's renewal and of the handoff were both counted for b
// (readNew reads the key: b's value, fine). The batch's goroutines are
// slow to reach renewedOn (f's answer is settled first: HoldLease stands
// in for the delay); when they do, a's renewal answered "renewed" with no
// message counted for it (none came while a was tracked), so its echo is
// taken as still to come and marked on b's key, on every master. Another
// program then deletes b's key on every master: each message is taken
// for the echo of a renewal whose echo came long before, and b stays
// held until its next renewal, 2 s later.
func TestAdv13RenewalOfHandedOverLease(t *testing.T) {
	const name = "adv13-handed"
	key := "distlock:" + name
	servers := masters(t, 3)
	c, proxies := adv13Client(t, servers)
	ctx := ctxTimeout(t, 10*time.Second)

	a, err := c.TryAcquire(ctx, name)
	require.NoError(t, err)
	f, err := c.TryAcquire(ctx, "adv13-other") // due just after a: the same batch, after a
	require.NoError(t, err)
	type got struct {
		l   *distlock.Lease
		err error
	}
	next := make(chan got, 1)
	go func() {
		l, err := c.Acquire(ctx, name)
		next <- got{l, err}
	}()
	eventually(t, "a goroutine waits for "+name, func() bool { return distlock.Queued(c, name) == 2 })
	everyMasterHolds(t, servers, name)
	time.Sleep(100 * time.Millisecond) // the acquires' messages are in

	for _, p := range proxies {
		p.SetLatency(300 * time.Millisecond)
	}
	before := commandCalls(t, servers, "evalsha")
	deadline := time.Now().Add(adv13TTL / 2)
	for commandCalls(t, servers, "evalsha")-before < 6 { // a's and f's renewals ran on every master
		require.True(t, time.Now().Before(deadline), "no renewal ran")
		time.Sleep(time.Millisecond)
	}
	unhold := distlock.HoldLease(f)
	held := true
	defer func() {
		if held {
			unhold()
		}
	}()
	require.NoError(t, a.Release(ctx)) // hands over to the waiting goroutine
	var b *distlock.Lease
	select {
	case g := <-next:
		require.NoError(t, g.err)
		b = g.l
	case <-time.After(3 * time.Second):
		t.Fatal("the waiting goroutine did not get the lease")
	}
	for _, p := range proxies {
		p.SetLatency(0)
	}
	time.Sleep(200 * time.Millisecond) // every answer and message in; readNew's read done
	held = false
	unhold() // the batch's goroutines settle f, then judge a's renewal (renewedOn)
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, b.Err())

	changed := time.Now()
	for _, s := range servers {
		_, err := s.Do("DEL", key)
		require.NoError(t, err)
	}
	select {
	case <-b.Done():
		require.ErrorIs(t, b.Err(), distlock.ErrLeaseLost)
		t.Logf("lost %v after the deletes: %v", time.Since(changed).Round(time.Millisecond), b.Err())
	case <-time.After(eventWithin):
		t.Fatalf("Done still open %v after every master's key was deleted (Err %v); want the loss heard from the key events, not the next renewal", eventWithin, b.Err())
	}
	_ = f.Release(context.WithoutCancel(ctx))
}
