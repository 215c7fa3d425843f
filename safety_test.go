package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// The regression tests of the interleavings that broke the safety claims
// of docs/safety.md (issue 14), one per interleaving, against real masters.

// Extend with a shorter TTL while a background renewal is unanswered on a
// majority: the renewal's acks of the longer TTL must not count once the
// shorter one is asked for. Masters 1 and 2 answer late (their commands
// run at once; only the answers are held back): the renewal's answers come
// after Extend began, then Extend sends them the short TTL and its ctx
// ends before they answer. Their keys then expire with the short TTL, and
// the lease must know it. (Before the fix the renewal's late answers
// raised the validity back to the long TTL: Deadline about 2.9 s away
// while every key was gone 0.7 s later, and another Client acquired while
// Err was nil.)
func TestExtendShorterWithRenewalInFlight(t *testing.T) {
	servers := masters(t, 3)
	c, proxies := newProxiedClient(t, servers)
	other := newClient(t, servers, distlock.Config{})

	const ttl, short, late = 3 * time.Second, 400 * time.Millisecond, 300 * time.Millisecond
	l, err := c.Acquire(t.Context(), "shorter-inflight", distlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	acquired := time.Now()
	// The first renewal, at TTL/3, sets every master's ack; the second
	// goes out at 2·TTL/3, and Extend comes 100 ms later, while masters 1
	// and 2 have not answered it.
	time.Sleep(time.Until(acquired.Add(ttl/3 + 200*time.Millisecond)))
	proxies[1].SetLatency(late)
	proxies[2].SetLatency(late)
	time.Sleep(time.Until(acquired.Add(2*ttl/3 + 100*time.Millisecond)))
	extendStart := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 350*time.Millisecond)
	defer cancel()
	err = l.Extend(ctx, short)
	t.Logf("Extend: %v after %v; Deadline in %v", err, time.Since(extendStart), time.Until(l.Deadline()))
	if d := l.Deadline(); d.After(extendStart.Add(short)) {
		t.Errorf("Deadline after Extend(%v): %v after Extend began; want at most %v", short, d.Sub(extendStart), short)
	}
	// Every key expires by extendStart + late + short at the latest.
	time.Sleep(time.Until(extendStart.Add(late + short + 100*time.Millisecond)))
	l2, err := other.TryAcquire(t.Context(), "shorter-inflight")
	if err != nil {
		t.Fatalf("another Client's TryAcquire once the keys expired: %v", err)
	}
	defer l2.Release(context.Background())
	if err := l.Err(); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("first lease's Err while another Client holds the lock: got %v; want ErrLeaseLost", err)
	}
}

// With an even number of masters a held lock is reported as locked, not as
// a missing quorum: on 4 masters the holder has at least 3, so a second
// Client's attempt is decided by 2 refusals, before the rest answer.
// (Before the fix: Held=2 Needed=3, ErrNoQuorum, for 2, 4, 6 and 8.)
func TestEvenMastersHeldIsLocked(t *testing.T) {
	for _, n := range []int{2, 4, 6} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			servers := masters(t, n)
			a := newClient(t, servers, distlock.Config{})
			b := newClient(t, servers, distlock.Config{})
			l, err := a.Acquire(t.Context(), "even")
			if err != nil {
				t.Fatal(err)
			}
			for range 20 {
				_, err := b.TryAcquire(t.Context(), "even")
				if !errors.Is(err, distlock.ErrLocked) || errors.Is(err, distlock.ErrNoQuorum) {
					t.Fatalf("TryAcquire of a lock held on %d masters: got %v; want ErrLocked", n, err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if _, err := b.Acquire(ctx, "even"); !errors.Is(err, distlock.ErrLocked) {
				t.Fatalf("Acquire cut short by ctx: got %v; want ErrLocked", err)
			}
			if err := l.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Waiters of one Client whose ctx ends while another goroutine holds the
// lock never get a lease: the lock becomes free only after they were
// cancelled, so any lease they return was taken after ctx ended. (Before
// the fix, of 10,000 waiters cancelled together 58 to 177 got a lease
// handed over after cancellation.)
func TestAcquireNoLeaseAfterCtx(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	holder, err := c.Acquire(t.Context(), "after-ctx")
	if err != nil {
		t.Fatal(err)
	}
	const waiters = 300
	ctx, cancel := context.WithCancel(t.Context())
	results := make(chan *distlock.Lease, waiters)
	for range waiters {
		go func() {
			l, _ := c.Acquire(ctx, "after-ctx")
			results <- l
		}()
	}
	eventually(t, "every waiter queued", func() bool { return distlock.Queued(c, "after-ctx") == waiters+1 })
	cancel()
	if err := holder.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := 0
	for range waiters {
		if l := <-results; l != nil {
			got++
			l.Release(t.Context())
		}
	}
	if got > 0 {
		t.Errorf("leases returned to Acquire calls whose ctx had ended: got %d; want 0", got)
	}
	noLockKeys(t, servers)
	l, err := c.TryAcquire(t.Context(), "after-ctx")
	if err != nil {
		t.Fatalf("TryAcquire after the waiters gave up: %v", err)
	}
	l.Release(t.Context())
}

// The context of Lease.Context is done by the time Release returns, and
// says why. (Before the fix it was cancelled by a goroutine of the context
// package, a moment later.)
func TestLeaseContextDoneWhenReleaseReturns(t *testing.T) {
	servers := masters(t, 1)
	c := newClient(t, servers, distlock.Config{})
	for i := range 200 {
		l, err := c.Acquire(t.Context(), "ctx-done")
		if err != nil {
			t.Fatal(err)
		}
		lctx, stop := l.Context(context.Background())
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		if lctx.Err() == nil {
			t.Fatalf("round %d: lease context live when Release returned; want done", i)
		}
		if cause := context.Cause(lctx); !errors.Is(cause, distlock.ErrReleased) {
			t.Fatalf("round %d: context.Cause: got %v; want ErrReleased", i, cause)
		}
		stop()
	}
}

// The interleaving itself: a goroutine of the Client is handed the lock at
// the instant its ctx ends. Acquire must not return the lease; it passes it
// on (here to nobody: its keys are deleted). (Before the fix Acquire
// returned the handed-over lease with ctx already done.)
func TestAcquireHandedOverAsCtxEnds(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	holder, err := c.Acquire(t.Context(), "handed-ctx")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer distlock.SetTurnHook(func(string) { cancel() })()
	got := make(chan error, 1)
	go func() {
		l, err := c.Acquire(ctx, "handed-ctx")
		if l != nil {
			l.Release(t.Context())
			err = errors.New("got a lease")
		}
		got <- err
	}()
	eventually(t, "the waiter queued", func() bool { return distlock.Queued(c, "handed-ctx") == 2 })
	if err := holder.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire whose ctx ended as the lock was handed over: got %v; want context.Canceled and no lease", err)
	}
	noLockKeys(t, servers)
}

// A local handoff draws its token on a majority where the keys still hold
// the value: when they vanished early on masters 1 and 2 (a clock jump,
// simulated with PEXPIRE 1) and another Client acquired meanwhile, the
// handoff fails there, and the next goroutine of the first Client gets the
// lock only after the other Client, with a larger token. (Before the fix,
// G1 handed G3 a counter from a block drawn earlier, lower than the other
// Client's token, while that Client still held the lock.)
//
// The first Client hears no key-change messages (DisableLossEvents): with
// them, G1 would be lost as the keys vanish, and hand nothing over; the
// handoff must be safe where the messages are lost or never sent.
func TestHandoffAfterKeysVanishedEarly(t *testing.T) {
	const name = "vanish-handoff"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{DisableLossEvents: true})
	y := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	g1, err := c.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// G2 waits (the old code drew a block of tokens then), and gives up.
	g2ctx, g2cancel := context.WithCancel(ctx)
	g2 := acquireLater(t, g2ctx, c, name)
	waitQueued(t, c, name)
	time.Sleep(20 * time.Millisecond)
	g2cancel()
	if h := <-g2; h.err == nil {
		t.Fatal("G2 got a lease")
	}
	everyMasterHolds(t, servers, name)
	for _, s := range servers[1:] {
		if _, err := s.Do("PEXPIRE", "distlock:"+name, "1"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond)
	ly, err := y.TryAcquire(ctx, name)
	if err != nil {
		t.Fatalf("other Client, with the keys gone from masters 1 and 2: %v", err)
	}
	g3 := acquireLater(t, ctx, c, name)
	waitQueued(t, c, name)
	g1.Release(ctx) // its keys are gone from a majority: an error, see TestReleaseOfLostLease
	select {
	case h := <-g3:
		if h.err == nil {
			t.Fatalf("G3 got the lock (token %d) while the other Client holds it (token %d)", h.l.Token(), ly.Token())
		}
		t.Fatalf("G3: %v", h.err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := ly.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l3 := take(t, g3, "G3")
	if l3.Token() <= ly.Token() {
		t.Errorf("G3's token %d after the other Client's %d; want more", l3.Token(), ly.Token())
	}
	l3.Release(ctx)
	noLockKeys(t, servers)
}

// Release of a lease whose keys a majority no longer holds says the lease
// was lost (its holder's section may not have been exclusive), and leaves
// another value's keys alone. (Before the fix Release returned nil.)
func TestReleaseOfLostLease(t *testing.T) {
	for _, how := range []string{"deleted", "taken"} {
		t.Run(how, func(t *testing.T) {
			servers := masters(t, 3)
			c := newClient(t, servers, distlock.Config{})
			l, err := c.Acquire(t.Context(), "lost-release")
			if err != nil {
				t.Fatal(err)
			}
			everyMasterHolds(t, servers, "lost-release")
			for _, s := range servers[1:] {
				cmd := []string{"DEL", "distlock:lost-release"}
				if how == "taken" {
					cmd = []string{"SET", "distlock:lost-release", "someone-else", "PX", "10000"}
				}
				if _, err := s.Do(cmd...); err != nil {
					t.Fatal(err)
				}
			}
			err = l.Release(t.Context())
			if !errors.Is(err, distlock.ErrLeaseLost) {
				t.Fatalf("Release with the keys %s on 2 of 3 masters: got %v; want ErrLeaseLost", how, err)
			}
			t.Logf("Release: %v", err)
			if how == "taken" {
				for _, s := range servers[1:] {
					if v, _ := s.Do("GET", "distlock:lost-release"); v != "someone-else" {
						t.Errorf("%s holds %q after Release; want the other value kept", s.Addr(), v)
					}
				}
			}
			if err := l.Release(t.Context()); err != nil {
				t.Errorf("second Release: %v; want nil", err)
			}
		})
	}
}

// One lock key has one fence counter, however the key is split into key
// prefix and name: "a:"+"b:x" and "a:b:"+"x" both lock a:b:x. (Before the
// fix each prefix had counters of its own, and a lease under one prefix
// could get a token lower than an earlier lease's under the other.)
func TestPrefixesShareCounter(t *testing.T) {
	servers := masters(t, 3)
	a := newClient(t, servers, distlock.Config{KeyPrefix: "a:"})
	b := newClient(t, servers, distlock.Config{KeyPrefix: "a:b:"})
	ctx := t.Context()
	var last uint64
	for i := range 6 {
		c, name := a, "b:x"
		if i%2 == 1 {
			c, name = b, "x"
		}
		// Raise the other prefix's counter first, as other names in the
		// slot would.
		for range 3 {
			l, err := c.Acquire(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if l.Token() <= last {
				t.Fatalf("round %d: token %d after %d; want more", i, l.Token(), last)
			}
			last = l.Token()
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if i%2 == 0 {
			// The other prefix's holder is refused while this one holds.
			l, err := a.Acquire(ctx, "b:x")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.TryAcquire(ctx, "x"); !errors.Is(err, distlock.ErrLocked) {
				t.Fatalf("TryAcquire of a:b:x under the other prefix: got %v; want ErrLocked", err)
			}
			last = l.Token()
			l.Release(ctx)
		}
	}
}

// No prefix and name can make a lock key that is one of distlock's own keys.
func TestReservedKeysUnreachable(t *testing.T) {
	servers := masters(t, 1)
	for _, prefix := range []string{"distlock:fence:", "distlock:wait:x", "distlock:lapse:"} {
		if _, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers), KeyPrefix: prefix}); err == nil {
			t.Errorf("New with KeyPrefix %q: got nil; want an error", prefix)
		}
	}
	c := newClient(t, servers, distlock.Config{KeyPrefix: "distlock:fe"})
	if _, err := c.TryAcquire(t.Context(), "nce:{x}"); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("TryAcquire of key distlock:fence:{x}: got %v; want an error saying it is reserved", err)
	}
	d := newClient(t, servers, distlock.Config{KeyPrefix: ""})
	if _, err := d.TryAcquire(t.Context(), "fence:{x}"); err == nil {
		t.Error("TryAcquire of name fence:{x}: got nil; want an error")
	}
}

// A clean-up delete that rueidis queued on a connection it then replaced,
// delivered late (as TCP delivers a closed socket's send queue once a
// partition heals), must not delete a later lease's key. Master 2 is
// partitioned from a waiting Acquire's Client: each attempt's acquire and
// clean-up delete queue up there unanswered. Then the connection fails,
// the Client dials anew, the lock comes free, the waiter wins on every
// master, and only then do the old bytes arrive. (Before the fix every
// attempt of an Acquire used one value, and the late delete removed the
// new lease's key on master 2.)
func TestStaleDeleteAfterReconnect(t *testing.T) {
	servers := masters(t, 3)
	// Under load the winning attempt's command to master 2 can time out,
	// and then master 2 holds no key for the late delete to remove: try
	// again, with another name.
	for round := range 3 {
		if staleDeleteRound(t, servers, fmt.Sprintf("stale-delete-%d", round)) {
			return
		}
	}
	t.Fatal("in 3 rounds the winning attempt never reached master 2: the test could not set up its interleaving")
}

// staleDeleteRound runs TestStaleDeleteAfterReconnect's interleaving on
// name, and reports false when it could not set it up.
func staleDeleteRound(t *testing.T, servers []*redistest.Server, name string) bool {
	late := redistest.NewLateDialer()
	defer late.Close()
	opts := make([]rueidis.ClientOption, len(servers))
	for i, s := range servers {
		opts[i] = rueidis.ClientOption{InitAddress: []string{s.Addr()}}
	}
	opts[2].DialCtxFn = late.Dial
	w, err := distlock.New(distlock.Config{NodeOptions: opts, NodeTimeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	held, err := h.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	everyMasterHolds(t, servers, name)
	late.Partition()
	got := acquireLater(t, ctx, w, name)
	time.Sleep(500 * time.Millisecond) // attempts, each queued on master 2
	late.Break()
	// The Client notices the broken connection and dials anew.
	eventually(t, "master 2 answers the waiting Client again", func() bool {
		st, err := w.Status(ctx, name)
		return err == nil && st.Masters[2].Err == nil
	})
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l := take(t, got, "waiter")
	defer l.Release(ctx)
	value := ""
	for deadline := time.Now().Add(time.Second); value == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		value = keyValue(t, servers[2], name)
	}
	if value == "" {
		t.Logf("%s: master 2 never got the lease's key", name)
		return false
	}
	n := late.DeliverHeld()
	t.Logf("delivered %d bytes held since the partition", n)
	if n == 0 {
		t.Fatal("nothing was held: the test did not queue commands during the partition")
	}
	time.Sleep(straggleWait) // the clean-up's second delete, if any
	if v := keyValue(t, servers[2], name); v != value {
		t.Fatalf("master 2 holds %q after the old connection's bytes arrived; want the lease's key %q kept", v, value)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	noLockKeys(t, servers)
	return true
}

// everyMasterHolds waits until every master holds name's key: Acquire
// returns at a majority, and a straggler's grant landing after the test
// has changed a key would undo the change.
func everyMasterHolds(t *testing.T, servers []*redistest.Server, name string) {
	t.Helper()
	eventually(t, "every master holds "+name, func() bool {
		for _, s := range servers {
			if keyValue(t, s, name) == "" {
				return false
			}
		}
		return true
	})
}

// heldValue waits until every master holds name with one value (Acquire
// returns once a majority granted; the last grant may come just after),
// and returns it.
func heldValue(t *testing.T, servers []*redistest.Server, name string) string {
	t.Helper()
	var v string
	eventually(t, "every master holds "+name+" with one value", func() bool {
		v = keyValue(t, servers[0], name)
		for _, s := range servers {
			if got := keyValue(t, s, name); got == "" || got != v {
				return false
			}
		}
		return true
	})
	return v
}

// straggleWait outlasts the clean-up's delayed second delete (100 ms).
const straggleWait = 200 * time.Millisecond

// A waiter whose watch subscribes only after master 0 announced it first
// in line (the one before it won meanwhile) must still be woken when the
// lock comes free: the read after subscribing asks master 0 who is first.
// (Before the fix it stayed marked behind, slept through the release until
// its backoff or the holder's PTTL ran out, a minute here: the lost wake-up
// behind TestWaitListWakesOnlyTheFirst's rare hangs.)
func TestWaiterSubscribedAfterHeadAnnounced(t *testing.T) {
	const name = "late-sub"
	servers := masters(t, 3)
	slow := minuteBackoff
	h := newClient(t, servers, slow)
	b := newClient(t, servers, slow)
	c := newClient(t, servers, slow)
	ctx := ctxTimeout(t, 20*time.Second)
	held, err := h.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, name) // before any waiter: Acquire returns at a majority
	w1 := acquireLater(t, ctx, b, name)
	waitWaiters(t, servers[0], name, 1)
	// W1 runs the hook before it watches: once it is subscribed, the hook
	// set below stops W2 alone.
	for _, s := range servers {
		waitSubscribers(t, s, name, true)
	}

	entered, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	letGo := func() { once.Do(func() { close(proceed) }) }
	defer letGo() // a failure below must not leave W2 stopped in the hook
	var calls atomic.Int32
	defer distlock.SetWatchHook(func(n string) {
		if n == name && calls.Add(1) == 1 {
			close(entered)
			<-proceed
		}
	})()
	w2ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	w2 := acquireLater(t, w2ctx, c, name)
	<-entered // W2 is in line behind W1, and not yet watching
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l1 := take(t, w1, "W1")
	waitWaiters(t, servers[0], name, 1) // W1 left the line: W2 is first
	letGo()
	time.Sleep(200 * time.Millisecond) // W2 subscribes, and sleeps
	start := time.Now()
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := take(t, w2, "W2")
	t.Logf("W2 took the lock %v after W1's release", time.Since(start).Round(time.Millisecond))
	l2.Release(ctx)
}

// A chain of local handoffs leaves no old value anywhere, and, with every
// master answering, no tombstone: the old value is buried only where a
// handoff's answer never came.
func TestHandoffLeavesNoOldValue(t *testing.T) {
	const name = "chain-clean"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := c.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		got := acquireLater(t, ctx, c, name)
		waitQueued(t, c, name)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		l = take(t, got, fmt.Sprintf("handoff %d", i+1))
		// The handoff returns at a majority; the last master's swap may
		// come just after. Then every master holds the new lease's value.
		heldValue(t, servers, name)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	noLockKeys(t, servers)
	time.Sleep(50 * time.Millisecond)
	for _, s := range servers {
		if keys, _ := s.Do("KEYS", "distlock:fence:dead:*"); keys != "" {
			t.Errorf("%s: tombstones %q after handoffs every master answered; want none", s.Addr(), keys)
		}
	}
}

// A fence counter outside 1..2^53 (set by hand, or negative) never yields
// a token: that master counts as failed, with an error naming the key.
// (Before: -1000 gave token 0xffffffffffffffff; above 2^57 the shift
// wrapped to small tokens.)
func TestCounterOutOfRange(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := t.Context()
	// Acquire and Release return at a majority: master 0's counter must
	// exist and its release must have landed (raising the counter) before
	// the counter is set by hand below.
	fence := cycleFenceKey(t, ctx, c, "range", servers)
	// One bad master: the lock still works on the other two, with a sane
	// token.
	if _, err := servers[0].Do("SET", fence, "-1000"); err != nil {
		t.Fatal(err)
	}
	l, err := c.TryAcquire(ctx, "range")
	if err != nil {
		t.Fatalf("TryAcquire with master 0's counter at -1000: %v", err)
	}
	if tok := l.Token(); tok>>6 > 1<<53 || tok&63 == 0 {
		t.Errorf("token %#x; want one from master 1 or 2, below 2^59", tok)
	}
	l.Release(ctx)
	// The release raises master 0's counter to its lease's (release.lua),
	// in the background where a majority answered first.
	eventually(t, "master 0's counter raised by the release", func() bool {
		v, _ := servers[0].Do("GET", fence)
		return v == strconv.FormatUint(l.Token()>>6, 10)
	})
	// Two bad masters: no token at all, and the error names the key.
	if _, err := servers[0].Do("SET", fence, "-1000"); err != nil {
		t.Fatal(err)
	}
	if _, err := servers[1].Do("SET", fence, "1152921504606846976"); err != nil { // 2^60
		t.Fatal(err)
	}
	_, err = c.TryAcquire(ctx, "range")
	if err == nil || !strings.Contains(err.Error(), fence) || !strings.Contains(err.Error(), "outside 1..2^53") {
		t.Fatalf("TryAcquire with two counters out of range: got %v; want an error naming %s", err, fence)
	}
	noLockKeys(t, servers)
}

// TestCounterNegativeStaysRefused: a counter another program set below 0
// on every master stays refused however often an acquire tries. Each
// refused attempt's INCR walked it up (found by a CLI use test: -1, then
// 0, then a lease with token 65, far below the tokens handed out before);
// acquire.lua now undoes an INCR that leaves it below 1.
func TestCounterNegativeStaysRefused(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := t.Context()
	fence := cycleFenceKey(t, ctx, c, "negative", servers)
	for _, s := range servers {
		if _, err := s.Do("SET", fence, "-1"); err != nil {
			t.Fatal(err)
		}
	}
	noKeys := func() bool {
		return lockKeys(t, servers[0]) == nil && lockKeys(t, servers[1]) == nil && lockKeys(t, servers[2]) == nil
	}
	for i := range 3 {
		// A refused attempt's keys are cleaned up in the background.
		eventually(t, "no lock key left", noKeys)
		l, err := c.TryAcquire(ctx, "negative")
		if err == nil {
			l.Release(ctx)
			t.Fatalf("attempt %d: token %d with every counter set to -1; want a refusal", i+1, l.Token())
		}
		if !strings.Contains(err.Error(), " is -1, outside 1..2^53") {
			t.Fatalf("attempt %d: %v; want the counter refused as out of range, with its value as set", i+1, err)
		}
	}
	for _, s := range servers {
		if v, _ := s.Do("GET", fence); v != "-1" {
			t.Errorf("%s: counter %q after refused attempts; want -1, as it was set", s.Addr(), v)
		}
	}
	eventually(t, "no lock key left", noKeys)
}

// A counter another program set below 0 while a lease is held, with
// another goroutine of its Client waiting: Release's handoff draws no
// token from it (handoff.lua undoes an INCR that leaves it below 1, as
// acquire.lua does), and the release that follows raises the counter to
// the released lease's (release.lua), so the waiter's token is still
// above it.
func TestCounterNegativeThroughHandoffKeepsOrder(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := t.Context()
	fence := cycleFenceKey(t, ctx, c, "negative-handoff", servers)
	l, err := c.Acquire(ctx, "negative-handoff")
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, "negative-handoff")
	got := acquireLater(t, ctx, c, "negative-handoff")
	waitQueued(t, c, "negative-handoff")
	for _, s := range servers {
		if _, err := s.Do("SET", fence, "-1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	next := take(t, got, "the waiter")
	if next.Token() <= l.Token() {
		t.Errorf("the waiter's token %d is not above the released lease's %d", next.Token(), l.Token())
	}
	if err := next.Release(ctx); err != nil {
		t.Fatal(err)
	}
	noLockKeysEventually(t, servers)
}
