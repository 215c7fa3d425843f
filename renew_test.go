package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newProxiedClient returns a Client that reaches servers through proxies
// of their own, closed when the test ends.
func newProxiedClient(t *testing.T, servers []*redistest.Server) (*distlock.Client, []*redistest.Proxy) {
	t.Helper()
	proxies := redistest.ProxyN(t, servers)
	urls := make([]string, len(proxies))
	for i, p := range proxies {
		urls[i] = p.URL()
	}
	c, err := distlock.New(distlock.Config{Nodes: urls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range proxies {
			p.SetLatency(0)
			p.Restore()
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c, proxies
}

// scriptCalls returns how many scripts (EVALSHA and EVAL) s has run since
// its statistics were last reset.
func scriptCalls(t *testing.T, s *redistest.Server) int {
	t.Helper()
	one := []*redistest.Server{s}
	return commandCalls(t, one, "evalsha") + commandCalls(t, one, "eval")
}

// Masters that answer later than the per-master timeout (300ms here,
// against min(250ms, TTL/10) = 150ms) but well within the TTL keep every
// lease held: a renewal waits for their answers as long as they can be of
// use. And no lease is sent to a master again while its renewal there is
// unanswered: each master runs about one renewal per lease per TTL/3, not
// retries on top. (Before, every renewal gave up after the per-master
// timeout and retried behind its own commands until the leases were lost:
// the collapse of 100,000 leases under load in benchmarks/, section (d).)
func TestRenewalWaitsForSlowMasters(t *testing.T) {
	servers := masters(t, 3)
	c, proxies := newProxiedClient(t, servers)
	const (
		ttl     = 1500 * time.Millisecond
		latency = 300 * time.Millisecond
		n       = 200
		hold    = 2 * ttl
	)
	leases := make([]*distlock.Lease, n)
	for i := range leases {
		l, err := c.Acquire(ctxTimeout(t, 5*time.Second), fmt.Sprintf("slow-%d", i), distlock.WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		leases[i] = l
	}
	for _, s := range servers {
		if _, err := s.Do("CONFIG", "RESETSTAT"); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range proxies {
		p.SetLatency(latency)
	}
	time.Sleep(hold)
	lost := 0
	for _, l := range leases {
		if l.Err() != nil {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d leases lost with masters answering %v late, TTL %v: %v", lost, n, latency, ttl, leases[0].Err())
	}
	// A renewal per lease every TTL/3 (6 in the hold), one more that was
	// in flight when it began, one more for slack.
	limit := n * (int(hold/(ttl/3)) + 2)
	for i, s := range servers {
		if calls := scriptCalls(t, s); calls > limit {
			t.Errorf("master %d ran %d renewals of %d leases in %v; want at most %d (no retries behind unanswered renewals)", i, calls, n, hold, limit)
		}
	}
	for _, p := range proxies {
		p.SetLatency(0)
	}
	time.Sleep(latency) // answers already held back still come late
	for _, l := range leases {
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	noLockKeys(t, servers)
}

// With one master of three paused, each renewal is decided as soon as the
// other two have answered: the lease's validity moves on at every renewal
// while most of it is left, although a renewal now waits for a master's
// answer until the validity (nearly) runs out, and the paused master's
// never comes.
func TestRenewalNotHeldBackByPausedMaster(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	const ttl = 3 * time.Second
	l, err := c.Acquire(t.Context(), "one-paused", distlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	servers[2].Pause()
	defer servers[2].Resume()
	for range 2 {
		// The next renewal is due a third of a TTL after the last one:
		// with two thirds of the TTL left.
		d := l.Deadline()
		for l.Deadline().Equal(d) {
			if time.Now().After(d.Add(-ttl / 3)) {
				t.Fatalf("validity not moved on with %v of it left, a renewal due %v ago: the paused master held the renewal back (Err %v)", time.Until(d), time.Since(d.Add(-2*ttl/3)), l.Err())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if !l.Deadline().After(d) {
			t.Fatalf("Deadline moved from %v to %v; want later", d, l.Deadline())
		}
	}
	if err := l.Err(); err != nil {
		t.Fatalf("Err with one master of three paused: %v", err)
	}
	servers[2].Resume()
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	noLockKeys(t, servers)
}

// A master whose renewal failed is tried again while another master's
// renewal is still unanswered: the lease is not left waiting for the
// paused master until its validity runs out.
func TestRenewalRetriesOneMasterWhileAnotherIsPaused(t *testing.T) {
	servers := masters(t, 3)
	c, proxies := newProxiedClient(t, servers)
	const ttl = time.Second
	l, err := c.Acquire(t.Context(), "retry-one", distlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	// Acquire returns at a majority: the key must be on master 1 before
	// the cut, or the lease rightly holds only masters 0 and 2.
	heldEverywhere(t, servers, "retry-one")
	servers[2].Pause()
	defer servers[2].Resume()
	proxies[1].Cut()
	// The first renewal (at TTL/3): master 0 renews, master 1 fails, and
	// master 2 does not answer.
	time.Sleep(ttl / 2)
	proxies[1].Restore()
	time.Sleep(ttl)
	if err := l.Err(); err != nil {
		t.Fatalf("Err: %v; want held, renewed by masters 0 and 1", err)
	}
	servers[2].Resume()
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	noLockKeys(t, servers)
}

// Extend while a background renewal of the lease is unanswered on a paused
// master: the other two extend it, and Extend does not wait for the
// paused one.
func TestExtendWithPausedMaster(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	const ttl = time.Second
	l, err := c.Acquire(t.Context(), "extend-paused", distlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	servers[2].Pause()
	defer servers[2].Resume()
	time.Sleep(ttl / 2) // past the first renewal, whose answer from master 2 never comes
	if err := l.Extend(ctxTimeout(t, 5*time.Second), 10*time.Second); err != nil {
		t.Fatalf("Extend with one master of three paused: %v", err)
	}
	if until := time.Until(l.Deadline()); until < 9*time.Second {
		t.Errorf("Deadline after Extend to 10s: %v from now; want about 10s", until)
	}
	for _, s := range servers[:2] {
		if pttl := keyPTTL(t, s, "extend-paused"); pttl < 9000 {
			t.Errorf("PTTL on %s: %d ms; want about 10000", s.Addr(), pttl)
		}
	}
	servers[2].Resume()
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	noLockKeys(t, servers)
}

// connectionsReceived returns how many connections s has accepted since it
// started, this call's own included.
func connectionsReceived(t *testing.T, s *redistest.Server) int {
	t.Helper()
	info, err := s.Do("INFO", "stats")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_connections_received:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no total_connections_received in INFO stats of %s", s.Addr())
	return 0
}

// A Client sends everything to a master over one connection, batches of
// thousands of commands included: rueidis would send a pipeline of 2,000
// commands or more on a pooled connection of its own, where it could
// overtake commands sent before it on the first, and where key tracking
// would deliver every message twice. Close releases 2,500 leases in one
// batch per master.
func TestBigBatchOnOneConnection(t *testing.T) {
	servers := masters(t, 3)
	before := make([]int, len(servers))
	for i, s := range servers {
		before[i] = connectionsReceived(t, s)
	}
	c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 60*time.Second)
	const n = 2500
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			_, err := c.TryAcquire(ctx, fmt.Sprintf("big-%d", i))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i, s := range servers {
		// One for the Client, one for this reading.
		if got := connectionsReceived(t, s) - before[i]; got != 2 {
			t.Errorf("master %d accepted %d connections while a Client took and released %d leases; want 1 for the Client", i, got-1, n)
		}
	}
	noLockKeys(t, servers)
}

// One renew.lua call renews many leases, each key on its own: a key that
// another program replaced with a value of another type (a hash) answers
// "taken", which loses that lease at its renewal, while the others renewed
// in the same call stay held.
func TestRenewalBatchOneKeyOfAnotherType(t *testing.T) {
	servers := masters(t, 3)
	const ttl = 900 * time.Millisecond
	c := newClient(t, servers, distlock.Config{TTL: ttl, DisableLossEvents: true})
	ctx := context.Background()
	var leases []*distlock.Lease
	for _, name := range []string{"batch-a", "batch-b", "batch-c"} {
		l, err := c.Acquire(ctx, name)
		require.NoError(t, err)
		leases = append(leases, l)
		heldEverywhere(t, servers, name) // a late SET must not land between the DEL and HSET below
	}
	for _, s := range servers[:2] {
		_, err := s.Do("DEL", "distlock:batch-b")
		require.NoError(t, err)
		_, err = s.Do("HSET", "distlock:batch-b", "f", "v")
		require.NoError(t, err)
	}
	select {
	case <-leases[1].Done():
	case <-time.After(3 * time.Second):
		t.Fatal("the lease whose key became a hash on a majority was not lost")
	}
	assert.ErrorIs(t, leases[1].Err(), distlock.ErrLeaseLost)
	assert.ErrorContains(t, leases[1].Err(), "held by another value (renewal)", "lost by its renewal's answer, not by its validity running out")
	time.Sleep(2 * ttl) // renewals past the first: the other two still renew
	for _, l := range []*distlock.Lease{leases[0], leases[2]} {
		assert.NoError(t, l.Err())
		assert.NoError(t, l.Release(ctx))
	}
}

// A lease whose validity ran out before its renewals reached a majority
// says which masters failed it and why, as an acquire's error does: a use
// test found only "its validity ran out before a renewal reached a
// majority of masters", the causes in the log alone. Master 1 is shut
// down, master 2 paused.
func TestLeaseExpiredErrorNamesMasters(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	l, err := c.Acquire(t.Context(), "expired-why", distlock.WithTTL(time.Second))
	require.NoError(t, err)
	heldEverywhere(t, servers, "expired-why")
	require.NoError(t, servers[1].Kill())
	redistest.PauseUntilEnd(t, servers[2])
	err = lostWithin(t, l, 3*time.Second, "2 of 3 masters went")
	msg := err.Error()
	for _, want := range []string{"its validity ran out before a renewal reached a majority of masters", "master 1: " + servers[1].URL(), "master 2: " + servers[2].URL()} {
		assert.Contains(t, msg, want)
	}
	assert.NotContains(t, msg, "master 0:", "master 0 renewed it")
	var ne *distlock.NodeError
	assert.True(t, errors.As(err, &ne), "Err wraps the masters' *NodeError: %v", err)
}

// lostWithin waits up to d for l to end, and returns its Err, which must
// wrap ErrLeaseLost; what says what happened to it.
func lostWithin(t *testing.T, l *distlock.Lease, d time.Duration, what string) error {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(d):
		t.Fatalf("lease still held %v after %s (TTL %v)", d, what, l.TTL())
	}
	err := l.Err()
	require.ErrorIs(t, err, distlock.ErrLeaseLost)
	t.Log(err)
	return err
}
