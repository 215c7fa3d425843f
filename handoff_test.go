package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// heldLease is a lease taken by a goroutine of the test, or its error.
type heldLease struct {
	l   *distlock.Lease
	err error
}

// acquireLater runs c.Acquire(name) in a goroutine the test waits for.
func acquireLater(t *testing.T, ctx context.Context, c *distlock.Client, name string, opts ...distlock.Option) <-chan heldLease {
	got := make(chan heldLease, 1)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		l, err := c.Acquire(ctx, name, opts...)
		got <- heldLease{l, err}
	})
	return got
}

func take(t *testing.T, got <-chan heldLease, what string) *distlock.Lease {
	t.Helper()
	select {
	case h := <-got:
		if h.err != nil {
			t.Fatalf("%s: %v", what, h.err)
		}
		return h.l
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no lease after 5s", what)
	}
	return nil
}

// Goroutines of one Client pass the lock on without freeing its keys: each
// handoff replaces the value with the next lease's own on every master, in
// one script, and each next lease's token, drawn by the handoff's round
// trip, is larger than the one before. The last Release deletes the keys,
// and a lease of another Client then gets a larger token still.
func TestLocalHandoffKeepsKeys(t *testing.T) {
	const name = "handoff"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	a, err := c.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	value := heldValue(t, servers, name)
	got := acquireLater(t, ctx, c, name)
	waitQueued(t, c, name)
	if err := a.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if !errors.Is(a.Err(), distlock.ErrReleased) {
		t.Errorf("released lease: Err %v; want ErrReleased", a.Err())
	}
	prev := a
	for i := range 3 {
		l := take(t, got, "waiter")
		if l.Token() <= prev.Token() {
			t.Errorf("handoff %d: token %d after %d; want more", i+1, l.Token(), prev.Token())
		}
		// The handoff returns at a majority: the last master's script
		// may still be on its way.
		old := value
		eventually(t, fmt.Sprintf("handoff %d on every master", i+1), func() bool {
			v := keyValue(t, servers[0], name)
			for _, s := range servers {
				if w := keyValue(t, s, name); w == old || w != v {
					return false
				}
			}
			return true
		})
		next := keyValue(t, servers[0], name)
		for _, s := range servers {
			if v := keyValue(t, s, name); v == "" || v == value || v != next {
				t.Errorf("handoff %d: %s holds %q; want the next lease's own value on every master (not %q)", i+1, s.Addr(), v, value)
			}
		}
		value = next
		if err := l.Err(); err != nil {
			t.Fatalf("handed-over lease: %v", err)
		}
		if i < 2 {
			got = acquireLater(t, ctx, c, name)
			waitQueued(t, c, name)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		prev = l
	}
	noLockKeys(t, servers)

	other := newClient(t, servers, distlock.Config{})
	l, err := other.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if l.Token() <= prev.Token() {
		t.Errorf("another Client's token %d after the chain's last %d; want more", l.Token(), prev.Token())
	}
	l.Release(ctx)
	noLockKeys(t, servers)
}

// waitQueued waits until a goroutine of c waits for name behind its holder.
func waitQueued(t *testing.T, c *distlock.Client, name string) {
	t.Helper()
	eventually(t, "a goroutine waiting for "+name, func() bool { return distlock.Queued(c, name) >= 2 })
}

// When a waiter of another Client is first in master 0's line, the draw
// says so, and Release deletes the keys: the other Client's waiter gets
// the lock before this Client's own waiter, which came later.
func TestLocalHandoffYieldsToOtherClient(t *testing.T) {
	const name = "yield"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	remote := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	a, err := c.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// Acquire returns at a majority: a waiter that reached the third
	// master first would be granted there, not put in its line.
	heldEverywhere(t, servers, name)
	gotRemote := acquireLater(t, ctx, remote, name)
	waitWaiters(t, servers[0], name, 1)
	gotLocal := acquireLater(t, ctx, c, name)
	waitQueued(t, c, name)
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := take(t, gotRemote, "other Client's waiter")
	select {
	case h := <-gotLocal:
		t.Fatalf("this Client's waiter got the lock (%v) while the other Client's held it", h.err)
	case <-time.After(50 * time.Millisecond):
	}
	if r.Token() <= a.Token() {
		t.Errorf("token %d after %d", r.Token(), a.Token())
	}
	if err := r.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l := take(t, gotLocal, "this Client's waiter")
	if l.Token() <= r.Token() {
		t.Errorf("token %d after %d", l.Token(), r.Token())
	}
	l.Release(ctx)
	noLockKeys(t, servers)
}

// A waiter that asks for another TTL does not take the lease over: the
// keys are deleted and it acquires anew, with its own value and TTL.
func TestLocalHandoffOtherTTL(t *testing.T) {
	const name = "ttl"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	a, err := c.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	value := heldValue(t, servers, name)
	got := acquireLater(t, ctx, c, name, distlock.WithTTL(a.TTL()+time.Second))
	waitQueued(t, c, name)
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l := take(t, got, "waiter")
	if l.TTL() != a.TTL()+time.Second {
		t.Errorf("TTL %v; want %v", l.TTL(), a.TTL()+time.Second)
	}
	if l.Token() <= a.Token() {
		t.Errorf("token %d after %d", l.Token(), a.Token())
	}
	// The acquire returns at a majority; a master whose answer came after
	// the handoff's script there may hold no key, but none keeps the old
	// value.
	eventually(t, "a majority holds a new value, and none the old", func() bool {
		n := 0
		for _, s := range servers {
			switch v := keyValue(t, s, name); v {
			case value:
				return false
			case "":
			default:
				n++
			}
		}
		return n >= 2
	})
	l.Release(ctx)
	noLockKeys(t, servers)
}

// A handoff asks the masters: once most of them are down, Release finds no
// majority still holding the keys and deletes as usual, and the waiter must
// win a majority of its own, which it cannot. (Handing the lease over
// without asking would give the waiter a lock no majority vouched for.)
func TestLocalHandoffNeedsRecentMajority(t *testing.T) {
	const name = "majority"
	servers := masters(t, 3)
	ttl := 900 * time.Millisecond
	c := newClient(t, servers, distlock.Config{TTL: ttl})
	ctx := ctxTimeout(t, 10*time.Second)
	a, err := c.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	got := acquireLater(t, wctx, c, name)
	waitQueued(t, c, name)
	for _, s := range servers[1:] {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	// At once: no renewal has had to fail first.
	if err := a.Err(); err != nil {
		t.Fatalf("holder: %v; want it still valid", err)
	}
	a.Release(ctx)
	if h := <-got; h.err == nil {
		t.Errorf("waiter got a lease (token %d, %v of its %v validity left) with 2 of 3 masters down",
			h.l.Token(), time.Until(h.l.Deadline()).Round(time.Millisecond), ttl)
		h.l.Release(ctx)
	} else if !errors.Is(h.err, distlock.ErrNoQuorum) {
		t.Errorf("waiter: %v; want ErrNoQuorum", h.err)
	}
	noLockKeys(t, servers[:1])
}

// Many goroutines of two Clients take turns on one lock, holding it 1 ms:
// never two holders at once, every token larger than the one before, and
// handoffs within a Client that take consecutive counters of one block.
func TestLocalHandoffTokensRise(t *testing.T) {
	const name, rounds = "rise", 300
	servers := masters(t, 3)
	clients := []*distlock.Client{newClient(t, servers, distlock.Config{}), newClient(t, servers, distlock.Config{})}
	ctx := ctxTimeout(t, 60*time.Second)
	var mu sync.Mutex
	var holding bool
	var last uint64
	var n, consecutive int
	var wg sync.WaitGroup
	for w := range 8 {
		c := clients[0]
		if w >= 6 {
			c = clients[1]
		}
		wg.Go(func() {
			for {
				l, err := c.Acquire(ctx, name)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if holding {
					t.Errorf("two holders at once (token %d)", l.Token())
				}
				if l.Token() <= last {
					t.Errorf("token %d after %d", l.Token(), last)
				}
				if l.Token()>>6 == last>>6+1 {
					consecutive++
				}
				holding, last = true, l.Token()
				n++
				done := n >= rounds
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				holding = false
				mu.Unlock()
				if err := l.Release(ctx); err != nil {
					t.Error(err)
				}
				if done {
					return
				}
			}
		})
	}
	wg.Wait()
	// A lease whose token is the previous one's counter plus one was
	// handed over from the same block as the one before it. How many
	// depends on the machine's speed (a block serves handoffs for 20 ms);
	// none at all would mean this test no longer exercises handoffs.
	t.Logf("%d of %d leases took the next counter of the block before", consecutive, n)
	if consecutive == 0 {
		t.Errorf("no lease of %d was handed over from the block of the one before", n)
	}
	noLockKeys(t, servers)
}

// A chain of short holds keeps its keys renewed: each handed-over lease
// inherits its predecessor's renewal schedule, and one that is overdue is
// renewed at once, not pushed back by every handoff. With a TTL of 600 ms
// and 1 ms holds, a renewal pushed back at each handoff never went out,
// and a lease was lost about once per TTL.
func TestLocalHandoffChainRenews(t *testing.T) {
	const name = "chain"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{TTL: 600 * time.Millisecond})
	ctx := ctxTimeout(t, 20*time.Second)
	stop := time.Now().Add(3 * time.Second)
	var mu sync.Mutex
	var total, lost int
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				l, err := c.Acquire(ctx, name)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
				err = l.Release(ctx)
				mu.Lock()
				total++
				if errors.Is(err, distlock.ErrLeaseLost) {
					lost++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if lost > 0 {
		t.Errorf("%d of %d leases lost in a chain of 1 ms holds (TTL 600 ms); want none", lost, total)
	}
	noLockKeys(t, servers)
}

// Master 0 without the holder's key (restarted empty, or never granted it)
// still reads its waiting line for a draw: another Client's waiter is not
// passed over by a chain of this Client's holders.
func TestLocalHandoffYieldsWithoutKeyOnMasterZero(t *testing.T) {
	const name = "nokey0"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	remote := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	first, err := c.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, name) // else master 0's late acquire could put the key back after the DEL
	if _, err := servers[0].Do("DEL", "distlock:"+name); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				l, err := c.Acquire(ctx, name)
				if err != nil {
					return
				}
				time.Sleep(time.Millisecond)
				l.Release(ctx)
			}
		})
	}
	waitQueued(t, c, name)
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	l, err := remote.Acquire(rctx, name)
	if err != nil {
		t.Errorf("other Client's waiter, behind a chain of this Client's holders: %v", err)
	} else {
		l.Release(ctx)
	}
	close(done)
	wg.Wait()
	noLockKeys(t, servers)
}

// Close in the middle of a chain of local handoffs ends every lease and
// waiter, and leaves no lock key behind (a lease handed over but not yet
// taken over included).
func TestLocalHandoffClose(t *testing.T) {
	const name = "close"
	servers := masters(t, 3)
	c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	jobs := 0
	for range 4 {
		wg.Go(func() {
			for {
				l, err := c.Acquire(ctx, name)
				if err != nil {
					if !errors.Is(err, distlock.ErrClosed) {
						t.Errorf("Acquire: %v; want ErrClosed once the Client closes", err)
					}
					return
				}
				mu.Lock()
				jobs++
				mu.Unlock()
				time.Sleep(time.Millisecond)
				if err := l.Release(ctx); err != nil {
					t.Errorf("Release: %v", err)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	if jobs < 10 {
		t.Errorf("%d jobs before Close; want the chain to have run", jobs)
	}
	noLockKeys(t, servers)
}

// A lease extended to a longer TTL and then handed over to a waiter of the
// same Client (that asked for that TTL): the next lease's renewals must set
// the longer TTL, the one its validity is computed from. successor copies
// *l.req, whose TTL argument (ttlArg, formatted once per request) is the
// TTL before Extend: were only its ttl set, the next lease would renew
// with the old TTL, and its keys would expire long before the validity it
// reports, so that another Client took a lock the lease still held
// (an adversarial read of the allocation cuts).
func TestHandoffAfterExtendRenewsWithLeaseTTL(t *testing.T) {
	const name = "handoff-extend-ttl"
	const short, long = 600 * time.Millisecond, 3 * time.Second
	servers := masters(t, 3)
	// No loss events: the lease trusts its renewals, as with a Redis that
	// sends no keyspace notifications.
	c := newClient(t, servers, distlock.Config{TTL: short, DisableLossEvents: true})
	ctx := ctxTimeout(t, 20*time.Second)
	a, err := c.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Extend(ctx, long); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	got := acquireLater(t, ctx, c, name, distlock.WithTTL(long))
	waitQueued(t, c, name)
	if err := a.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	l := take(t, got, "waiter")
	defer l.Release(ctx)
	if l.TTL() != long {
		t.Fatalf("handed-over lease TTL %v; want %v", l.TTL(), long)
	}
	// Renewals go every TTL/3 (1 s): after the first, every master's key
	// must live about the lease's TTL.
	handed := time.Now()
	time.Sleep(long/3 + 300*time.Millisecond)
	for _, s := range servers {
		v, err := s.Do("PTTL", "distlock:"+name)
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := strconv.Atoi(v)
		if time.Duration(ms)*time.Millisecond < long/2 {
			t.Errorf("%s: PTTL %s ms after the handed-over lease (TTL %v) renewed; want about %v", s.Addr(), v, long, long)
		}
	}
	// The consequence: the keys lapse while the lease says it holds.
	time.Sleep(time.Until(handed.Add(long/3 + short + 200*time.Millisecond)))
	other := newClient(t, servers, distlock.Config{})
	o, err := other.TryAcquire(ctx, name)
	t.Logf("other Client's TryAcquire %v after the handoff: %v; handed-over lease Err %v", time.Since(handed).Round(time.Millisecond), err, l.Err())
	if err == nil {
		defer o.Release(ctx)
		if l.Err() == nil && time.Now().Before(l.Deadline()) {
			t.Errorf("another Client acquired %s (token %d) while the handed-over lease still holds it (Err nil, valid until %v from now)", name, o.Token(), time.Until(l.Deadline()).Round(time.Millisecond))
		}
	}
}
