package distlock_test

import (
	"context"
	"strconv"
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
	adv13Renewed(t, servers, name, "adv13-other") // their answers on their way
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

// adv13InFlight acquires name and, just after it, other (due together:
// one renewal batch, name's lease first), delays every master's answers
// by 300 ms, waits until both leases' renewals ran on every master (their
// answers on their way), and holds other's lease (HoldLease) so that the
// batch's goroutines, once the answers are in, settle name's lease and
// stop before renewedOn. It returns both leases and the function that
// lets the goroutines go on (called at cleanup too).
func adv13InFlight(t *testing.T, ctx context.Context, c *distlock.Client, servers []*redistest.Server, proxies []*redistest.Proxy, name, other string, before func()) (l, f *distlock.Lease, unhold func()) {
	t.Helper()
	l, err := c.TryAcquire(ctx, name)
	require.NoError(t, err)
	f, err = c.TryAcquire(ctx, other)
	require.NoError(t, err)
	if before != nil {
		before()
	}
	everyMasterHolds(t, servers, name)
	time.Sleep(100 * time.Millisecond) // the acquires' messages are in
	for _, p := range proxies {
		p.SetLatency(300 * time.Millisecond)
	}
	adv13Renewed(t, servers, name, other)
	done := distlock.HoldLease(f)
	held := true
	unhold = func() {
		if held {
			held = false
			done()
		}
	}
	t.Cleanup(unhold)
	return l, f, unhold
}

// adv13Deleted deletes key on every master and fails the test unless l
// ends as lost within eventWithin.
func adv13Deleted(t *testing.T, servers []*redistest.Server, key string, l *distlock.Lease) {
	t.Helper()
	require.NoError(t, l.Err())
	changed := time.Now()
	for _, s := range servers {
		_, err := s.Do("DEL", key)
		require.NoError(t, err)
	}
	select {
	case <-l.Done():
		require.ErrorIs(t, l.Err(), distlock.ErrLeaseLost)
		t.Logf("lost %v after the deletes: %v", time.Since(changed).Round(time.Millisecond), l.Err())
	case <-time.After(eventWithin):
		t.Fatalf("Done still open %v after every master's key was deleted (Err %v); want the loss heard from the key events, not the next renewal", eventWithin, l.Err())
	}
}

// TestAdv13RenewalOfReleasedLeaseThenReacquired: as
// TestAdv13RenewalOfHandedOverLease, without a handoff: the lease is
// released (deleted) while its renewal is on its way, and the same Client
// takes the name again at once. The old renewal, answered "renewed" with
// no message counted for its lease (ended), must mark no echo on the new
// lease's key.
func TestAdv13RenewalOfReleasedLeaseThenReacquired(t *testing.T) {
	const name = "adv13-reacquired"
	servers := masters(t, 3)
	c, proxies := adv13Client(t, servers)
	ctx := ctxTimeout(t, 10*time.Second)
	a, f, unhold := adv13InFlight(t, ctx, c, servers, proxies, name, "adv13-other", nil)
	require.NoError(t, a.Release(ctx)) // a majority's answers: after a's renewal's
	b, err := c.TryAcquire(ctx, name)
	require.NoError(t, err)
	for _, p := range proxies {
		p.SetLatency(0)
	}
	time.Sleep(400 * time.Millisecond) // every answer and message in
	unhold()
	time.Sleep(100 * time.Millisecond)
	adv13Deleted(t, servers, "distlock:"+name, b)
	_ = f.Release(context.WithoutCancel(ctx))
}

// TestAdv13ExtendBeforeRenewalJudged (holds): a renewal's answers are in,
// so its masters are free for Extend (Lease.answered closes freed), while
// the batch's goroutine is slow to settle another lease of the batch.
// The renewal's messages are judged before any lease is settled
// (renewedOn, then answered: TestAdv17OverlappingRenewalsSwallowDelete),
// so Extend's own write and another program's deletes, in a later turn,
// are read, not counted by the renewal: the lease ends at once. (Were the
// delete's message taken for an echo, the lease would wait for its next
// renewal.)
func TestAdv13ExtendBeforeRenewalJudged(t *testing.T) {
	const name = "adv13-extend"
	servers := masters(t, 3)
	c, proxies := adv13Client(t, servers)
	ctx := ctxTimeout(t, 10*time.Second)
	a, f, unhold := adv13InFlight(t, ctx, c, servers, proxies, name, "adv13-other2", nil)
	time.Sleep(400 * time.Millisecond) // the renewal's answers are in: a's settled, f's waiting
	for _, p := range proxies {
		p.SetLatency(0)
	}
	require.NoError(t, a.Extend(ctx, adv13TTL)) // on every master: none has a renewal of a unanswered
	time.Sleep(100 * time.Millisecond)          // Extend's messages in, counted by the renewal
	require.NoError(t, a.Err())
	changed := time.Now()
	for _, s := range servers {
		_, err := s.Do("DEL", "distlock:"+name)
		require.NoError(t, err)
	}
	select {
	case <-a.Done():
		require.ErrorIs(t, a.Err(), distlock.ErrLeaseLost)
		t.Logf("lost %v after the deletes: %v", time.Since(changed).Round(time.Millisecond), a.Err())
	case <-time.After(eventWithin):
		t.Fatalf("Done still open %v after the deletes (Err %v): the deletes' messages were taken for echoes", eventWithin, a.Err())
	}
	unhold()
	_ = f.Release(context.WithoutCancel(ctx))
}

// adv13Renewed waits until a renewal of each of names ran on every master:
// its key's expiry, once less than 5/6 of the TTL away, pushed back out.
func adv13Renewed(t *testing.T, servers []*redistest.Server, names ...string) {
	t.Helper()
	const bar = int64(adv13TTL * 5 / 6 / time.Millisecond)
	deadline := time.Now().Add(adv13TTL / 2)
	for _, renewed := range []bool{false, true} {
		for {
			all := true
			for _, s := range servers {
				for _, name := range names {
					ms, err := s.Do("PTTL", "distlock:"+name)
					require.NoError(t, err)
					if v, _ := strconv.ParseInt(ms, 10, 64); (v > bar) != renewed {
						all = false
					}
				}
			}
			if all {
				break
			}
			require.True(t, time.Now().Before(deadline), "no renewal ran")
			time.Sleep(time.Millisecond)
		}
	}
}
