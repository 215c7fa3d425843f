package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/keyslot"
	"github.com/distlock/distlock/internal/redistest"
)

// Tests of master 0's waiting list (acquire.go, attempt.go,
// internal/script/acquire.lua and leave.lua).

// minuteBackoff is the Config of holders and waiters that only a release's
// wake (or a test's own step) can move: a waiter's backoff and a lease's
// TTL of a minute never run out within a test, so a waiter that sleeps
// through its wake shows as a stall.
var minuteBackoff = distlock.Config{RetryMinDelay: time.Minute, RetryMaxDelay: time.Minute, TTL: time.Minute}

// doList runs a command on s and returns its array reply as a slice.
func doList(t *testing.T, s *redistest.Server, args ...string) []string {
	t.Helper()
	out, err := s.Do(args...)
	if err != nil {
		t.Fatalf("%v on %s: %v", args, s.Addr(), err)
	}
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// waitListKeys returns the waiting-list keys (by arrival and by lapse
// time) on s, of every lock name.
func waitListKeys(t *testing.T, s *redistest.Server) []string {
	t.Helper()
	return append(doList(t, s, "KEYS", "distlock:wait:*"), doList(t, s, "KEYS", "distlock:lapse:*")...)
}

// waiters returns the values in name's waiting list on s, first in line
// first.
func waiters(t *testing.T, s *redistest.Server, name string) []string {
	t.Helper()
	keys := doList(t, s, "KEYS", "distlock:wait:*"+name)
	var vals []string
	for _, k := range keys {
		if strings.HasSuffix(k, "}distlock:"+name) {
			vals = append(vals, doList(t, s, "ZRANGE", k, "0", "-1")...)
		}
	}
	return vals
}

// waitWaiters waits until name's waiting list on s has n entries and
// returns them.
func waitWaiters(t *testing.T, s *redistest.Server, name string, n int) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(2 * time.Second)
	for {
		if got = waiters(t, s, name); len(got) == n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2s: %q's waiting list on %s holds %v; want %d waiters", name, s.Addr(), got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noWaitListKeys fails unless every server is rid of waiting-list keys
// within d: much less than a registration's lapse (1s), so that keys that
// only expire by themselves count as left behind.
func noWaitListKeys(t *testing.T, servers []*redistest.Server, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for i, s := range servers {
		for {
			keys := waitListKeys(t, s)
			if len(keys) == 0 {
				break
			}
			if time.Now().After(deadline) {
				var detail []string
				for _, k := range keys {
					m, _ := s.Do("ZRANGE", k, "0", "-1", "WITHSCORES")
					detail = append(detail, fmt.Sprintf("%s=[%s]", k, strings.ReplaceAll(m, "\n", " ")))
				}
				t.Fatalf("waiting-list keys left on master %d after %v: %v", i, d, detail)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// gone fails unless value leaves name's waiting list on s within d.
func gone(t *testing.T, s *redistest.Server, name, value string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for slices.Contains(waiters(t, s, name), value) {
		if time.Now().After(deadline) {
			t.Fatalf("waiter %s still in %q's list %v after giving up", value, name, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Waiters of different Clients take the lock in order of arrival.
func TestWaitListFIFOAcrossClients(t *testing.T) {
	const name, n = "fifo", 5
	servers := masters(t, 3)
	holder := newClient(t, servers, distlock.Config{})
	clients := make([]*distlock.Client, n)
	for i := range clients {
		clients[i] = newClient(t, servers, distlock.Config{})
	}
	ctx := ctxTimeout(t, 5*time.Second)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, name) // before any waiter: Acquire returns at a majority

	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after a Fatal: ctx is cancelled, so this ends
	for i, c := range clients {
		wg.Go(func() {
			l, err := c.Acquire(ctx, name)
			if err != nil {
				t.Errorf("waiter %d: %v", i+1, err)
				return
			}
			mu.Lock()
			order = append(order, i+1)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			if err := l.Release(ctx); err != nil {
				t.Errorf("waiter %d: Release: %v", i+1, err)
			}
		})
		// Refused, it joins the list, behind the previous one.
		waitWaiters(t, servers[0], name, i+1)
		time.Sleep(30 * time.Millisecond)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if want := []int{1, 2, 3, 4, 5}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("order of waiters: got %v; want %v", order, want)
	}
	noWaitListKeys(t, servers, 300*time.Millisecond)
	noLockKeys(t, servers)
}

// A release wakes only the first waiter in line; the others sleep until
// master 0 announces that they are first (leave.lua). With a backoff far
// longer than the test, every wake-up here comes from those messages.
func TestWaitListWakesOnlyTheFirst(t *testing.T) {
	const name, n = "first", 5
	servers := masters(t, 3)
	slow := minuteBackoff
	holder := newClient(t, servers, slow)
	clients := make([]*distlock.Client, n)
	for i := range clients {
		clients[i] = newClient(t, servers, slow)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// Acquire returns at a majority: a waiter that reached the third
	// master before the holder would be granted there, not put in line.
	heldEverywhere(t, servers, name)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i, c := range clients {
		wg.Go(func() {
			l, err := c.Acquire(ctx, name)
			if err != nil {
				t.Errorf("waiter %d: %v", i+1, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
			if err := l.Release(ctx); err != nil {
				t.Errorf("waiter %d: Release: %v", i+1, err)
			}
		})
		waitWaiters(t, servers[0], name, i+1)
	}
	// Let every waiter's watch subscribe before counting.
	time.Sleep(200 * time.Millisecond)
	before := scriptCalls(t, servers[0])
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// Per job: an attempt when announced first (the lock still held), one
	// or two when the lock comes free (a wake as a majority shows it free,
	// maybe another as the last master's delete arrives), the leave, the
	// release: 4 to 5, so 20 to 25 here (measured: 22 to 28). Waking every
	// waiter at each release costs at least n+(n-1)+...+1 = 15 attempts
	// more (measured: 40 to 46).
	calls := scriptCalls(t, servers[0]) - before
	if max := 34; calls > max {
		t.Errorf("master 0 ran %d scripts for %d jobs; want at most %d (waiters behind the first woken too?)", calls, n, max)
	}
	t.Logf("master 0 ran %d scripts for %d jobs", calls, n)
	noWaitListKeys(t, servers, 300*time.Millisecond)
	noLockKeys(t, servers)
}

// firstInLine has an Acquire of first wait for name, which another Client
// holds, and returns once it stands first in master 0's line. The returned
// function makes it give up (it leaves the line) and waits for it; the
// test's end does too, so the holder must be released after that: by a
// t.Cleanup made before this call, not a defer, or the first waiter may
// take the freed lock first.
func firstInLine(t *testing.T, ctx context.Context, servers []*redistest.Server, first *distlock.Client, name string) (giveUp func()) {
	t.Helper()
	firstCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if l, err := first.Acquire(firstCtx, name); err == nil {
			t.Error("the first waiter got the lock while it was held")
			l.Release(ctx)
		}
	}()
	giveUp = func() {
		stop()
		<-done
	}
	t.Cleanup(giveUp)
	waitWaiters(t, servers[0], name, 1)
	return giveUp
}

// master0First returns node URLs for servers with every master but 0
// reached through a proxy 3 ms late, so that master 0's answer, which says
// whether a waiter is behind, is in every attempt's verdict: one decided
// without it leaves the waiter on the schedule it had.
func master0First(t *testing.T, servers []*redistest.Server) []string {
	t.Helper()
	nodes := redistest.URLs(servers)
	for i := 1; i < len(nodes); i++ {
		p, err := redistest.NewProxy(servers[i].Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		p.SetLatency(3 * time.Millisecond)
		nodes[i] = p.URL()
	}
	return nodes
}

// TestWaitListBehindSleeps: a waiter that master 0 says is behind another
// is woken by master 0 when it is first, so it retries only to renew its
// place and in case that word is lost: every half to whole RetryMaxDelay,
// not on the backoff from RetryMinDelay. Its early retries were a quarter of
// the scripts of a handoff between Clients: with 8 workers in 8
// processes, 22-23 scripts per job on the 3 masters before, 16 after, and
// 305 → 331 jobs/s, means of 3 runs (benchmarks/,
// BenchmarkHandoff/distlock-3/workers=8/procs=8).
func TestWaitListBehindSleeps(t *testing.T) {
	const name = "behindsleeps"
	servers := masters(t, 3)
	holder := newClient(t, servers, distlock.Config{TTL: time.Minute})
	first := newClient(t, servers, distlock.Config{})
	nodes := master0First(t, servers)
	behind := newObserved(t, nil, distlock.Config{Nodes: nodes}) // RetryMinDelay 5 ms, RetryMaxDelay 250 ms
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: it runs after firstInLine's (made later),
	// so the first waiter gives up before the lock is free.
	t.Cleanup(func() { l.Release(ctx) })
	heldEverywhere(t, servers, name)
	firstInLine(t, ctx, servers, first, name)

	// The waiter sleeps for master 0's announcement only while its Client
	// hears master 0 on the name: a Watch of its own has it subscribed
	// and the key read before the Acquire begins.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events, err := behind.Watch(watchCtx, name)
	if err != nil {
		t.Fatal(err)
	}
	if e := <-events; e.Type != distlock.EventAcquired {
		t.Fatalf("first event %v; want the holder's acquired", e)
	}

	// Attempts at 0 and then at least 125 ms apart: at most 4 in 400 ms.
	// The backoff from 5 ms makes 8 or more.
	short, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
	defer cancel()
	if _, err := behind.Acquire(short, name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire behind another waiter: %v; want DeadlineExceeded", err)
	}
	n := behind.count(t, "distlock.acquire.attempt.duration", nil)
	t.Logf("%d attempts in 400 ms behind another waiter", n)
	if n > 5 {
		t.Errorf("a waiter behind another made %d attempts in 400 ms; want at most 5 (it retries on the backoff, not every half RetryMaxDelay)", n)
	}
}

// A waiter that gives up leaves the list at once: it does not delay the
// next waiter until its registration lapses.
func TestWaitListGiveUpLeaves(t *testing.T) {
	const name = "ghost"
	servers := masters(t, 3)
	holder := newClient(t, servers, distlock.Config{})
	quitter := newClient(t, servers, distlock.Config{})
	next := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 5*time.Second)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, name) // before any waiter: Acquire returns at a majority

	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := quitter.Acquire(qctx, name)
		errc <- err
	}()
	ghost := waitWaiters(t, servers[0], name, 1)[0]
	err = <-errc
	if !errors.Is(err, distlock.ErrLocked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire until ctx ends: got %v; want ErrLocked and DeadlineExceeded", err)
	}

	// Next waits behind no one, well within the ghost's lapse (1s).
	got := acquireInBackground(t, ctx, next, name, "next waiter")
	// Well before the ghost's registration would lapse by itself.
	gone(t, servers[0], name, ghost, 300*time.Millisecond)
	waitWaiters(t, servers[0], name, 1)
	released := time.Now()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if d := (<-got).at.Sub(released); d > 200*time.Millisecond {
		t.Errorf("next waiter got the lock %v after release; want within 200ms (a ghost in line?)", d)
	}
	noWaitListKeys(t, servers, 300*time.Millisecond)
	noLockKeys(t, servers)
}

// A waiter whose process dies holds its place only until its registration
// lapses (max(1s, 4*RetryMaxDelay) = 1s).
func TestWaitListVanishedWaiterLapses(t *testing.T) {
	const name = "vanish"
	servers := masters(t, 3)
	holder := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{RetryMinDelay: 10 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond})
	ctx := ctxTimeout(t, 5*time.Second)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	got := behindDeadWaiter(t, ctx, servers, w, name)
	released := time.Now()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	d := (<-got).at.Sub(released)
	if d > 1500*time.Millisecond {
		t.Errorf("waiter behind a dead one got the lock %v after release; want within 1.5s", d)
	}
	// Its place held until it lapsed: 1s after the child's last attempt,
	// which came at most RetryMaxDelay*1.5 before the kill.
	if d < 500*time.Millisecond {
		t.Errorf("waiter behind a dead one got the lock %v after release; want the dead one's place kept about 1s", d)
	}
	noWaitListKeys(t, servers, 300*time.Millisecond)
	noLockKeys(t, servers)
}

// Under contention, with waiters that give up, nothing of the waiting list
// is left behind once every waiter has finished.
func TestWaitListNoKeysLeftBehind(t *testing.T) {
	const name = "churn"
	servers := masters(t, 3)
	ctx := ctxTimeout(t, 10*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside, wins, quits := false, 0, 0
	for range 4 {
		c := newClient(t, servers, distlock.Config{})
		for range 2 {
			wg.Go(func() {
				for range 5 {
					l, err := c.Acquire(ctx, name)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if inside {
						t.Error("two holders at once")
					}
					inside = true
					wins++
					mu.Unlock()
					time.Sleep(2 * time.Millisecond)
					mu.Lock()
					inside = false
					mu.Unlock()
					if err := l.Release(ctx); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	// Waiters of their own Clients that give up while others hold it.
	for range 2 {
		c := newClient(t, servers, distlock.Config{})
		wg.Go(func() {
			for range 10 {
				qctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
				l, err := c.Acquire(qctx, name)
				cancel()
				if err == nil {
					l.Release(ctx)
					continue
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Error(err)
				}
				mu.Lock()
				quits++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 40 {
		t.Errorf("critical sections: got %d; want 40", wins)
	}
	t.Logf("%d give-ups", quits)
	// Last of all, a waiter gives up while the lock is held.
	holder := newClient(t, servers, distlock.Config{})
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	quitter := newClient(t, servers, distlock.Config{})
	qctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := quitter.Acquire(qctx, name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire of a held lock until ctx ends: got %v; want DeadlineExceeded", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	noWaitListKeys(t, servers, 300*time.Millisecond)
	noLockKeys(t, servers)
}

// With master 0 down, waiting still works: waiters use the other masters.
func TestWaitListMasterZeroDown(t *testing.T) {
	const name = "m0down"
	servers := masters(t, 3)
	holder := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 5*time.Second)

	waitAfterRelease := func(phase string, live []*redistest.Server, before func()) {
		t.Helper()
		l, err := holder.Acquire(ctx, name)
		if err != nil {
			t.Fatalf("%s: holder: %v", phase, err)
		}
		// Acquire returns at a majority: a waiter that reached a master
		// first would be granted there, not put in its line.
		heldEverywhere(t, live, name)
		w := newClient(t, servers, distlock.Config{})
		got := acquireInBackground(t, ctx, w, name, phase+": waiter")
		before()
		released := time.Now()
		if err := l.Release(ctx); err != nil {
			t.Fatalf("%s: Release: %v", phase, err)
		}
		a := <-got
		if d := a.at.Sub(released); d > 500*time.Millisecond {
			t.Errorf("%s: waiter got the lock %v after release; want within 500ms", phase, d)
		}
		if a.token != 0 && a.token <= l.Token() {
			t.Errorf("%s: waiter's token %d; want > %d", phase, a.token, l.Token())
		}
	}
	// A waiter in master 0's list when master 0 dies.
	waitAfterRelease("joined before kill", servers, func() {
		waitWaiters(t, servers[0], name, 1)
		if err := servers[0].Kill(); err != nil {
			t.Fatal(err)
		}
	})
	// A waiter that never reached master 0.
	waitAfterRelease("master 0 dead", servers[1:], func() { time.Sleep(100 * time.Millisecond) })
	noLockKeys(t, servers[1:])
	noWaitListKeys(t, servers[1:], 0)
}

// acquired is when a background Acquire returned, and its lease's token
// (0 when it failed).
type acquired struct {
	at    time.Time
	token uint64
}

// acquireInBackground makes c Acquire name in a goroutine that the test
// waits for, releases the lease at once, and sends when Acquire returned
// and the token. A failed Acquire fails the test, saying who (what) it was.
func acquireInBackground(t *testing.T, ctx context.Context, c *distlock.Client, name, what string) <-chan acquired {
	t.Helper()
	got := make(chan acquired, 1)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		l, err := c.Acquire(ctx, name)
		a := acquired{at: time.Now()}
		if err != nil {
			got <- a
			t.Errorf("%s: %v", what, err)
			return
		}
		a.token = l.Token()
		got <- a
		l.Release(ctx)
	})
	return got
}

// behindDeadWaiter queues a waiter of another process for name, then an
// Acquire of w behind it, and kills the other process: its place in master
// 0's line stays until it lapses, 1s after its last attempt. It returns
// what w's Acquire gets.
func behindDeadWaiter(t *testing.T, ctx context.Context, servers []*redistest.Server, w *distlock.Client, name string) <-chan acquired {
	t.Helper()
	child := startWaiter(t, servers, name)
	for _, s := range servers { // in line on every master, then w behind it
		waitWaiters(t, s, name, 1)
	}
	got := acquireInBackground(t, ctx, w, name, "waiter")
	for _, s := range servers {
		waitWaiters(t, s, name, 2)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	return got
}

// A waiter behind one that died gets the lock soon after the release,
// though master 0 announces no new first in line: the dead waiter's place
// lapses, and only an acquire finds that out. With a backoff of a minute
// and the holder's TTL of 20s, only a retry at the moment master 0 said
// that place lapses gives it the lock in time, whether the place lapsed
// before the release or after.
func TestWaitListWakesBehindDeadFirst(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before time.Duration // from the kill to the release
		within time.Duration // from the release to the lock
	}{
		{"lapsed before the release", 1500 * time.Millisecond, time.Second},
		{"lapses after the release", 0, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const name = "deadfirst"
			servers := masters(t, 3)
			holder := newClient(t, servers, distlock.Config{})
			w := newClient(t, servers, distlock.Config{RetryMinDelay: time.Minute, RetryMaxDelay: time.Minute})
			ctx := ctxTimeout(t, 15*time.Second)
			l, err := holder.Acquire(ctx, name, distlock.WithTTL(20*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			heldEverywhere(t, servers, name) // before any waiter: Acquire returns at a majority
			got := behindDeadWaiter(t, ctx, servers, w, name)
			time.Sleep(tc.before) // the dead waiter's place lapses 1s after its last attempt
			released := time.Now()
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if d := (<-got).at.Sub(released); d > tc.within {
				t.Errorf("waiter behind a dead one got the lock %v after release; want within %v", d, tc.within)
			}
			noWaitListKeys(t, servers, 300*time.Millisecond)
			noLockKeys(t, servers)
		})
	}
}

// A waiter W whose acquire reached masters 1 and 2 before another waiter
// H's, but master 0 after H's, is first in line on 1 and 2 and second on
// 0, though its place (the earliest a master gave it) is before H's.
// Master 0 says W is behind, so W sleeps through the release; H, first on
// master 0 only, can never win 1 and 2. Nobody got the lock until W's
// backoff ended, and H, woken by its own clean-up of master 0's grant,
// retried over and over meanwhile (1,124 and 1,317 scripts on master 0 in
// 2s before the fix; TestWaitListWakesOnlyTheFirst saw it about once in
// 50 runs, waiters 4 and 5 ending at its 10s ctx). Found by a helper's
// diagnosis of that flake, 2026-12-06; it fails on 8e877f6 too, before
// the wake changes of be60761.
func TestWaiterRankedLateOnMasterZeroTakesTheLock(t *testing.T) {
	const name = "stale"
	servers := masters(t, 3)
	slow := minuteBackoff
	holder := newClient(t, servers, slow)
	h := newClient(t, servers, slow)

	// W: master 0 through a LateDialer (its acquire held back), masters 1
	// and 2 through proxies whose answers come late (the acquire runs at
	// once there, and W hears master 0 before it decides).
	d0 := redistest.NewLateDialer()
	t.Cleanup(d0.Close)
	proxies := redistest.ProxyN(t, servers[1:])
	wcfg := slow
	wcfg.NodeTimeout = 5 * time.Second
	w := viaClient(t, servers, map[int]*redistest.LateDialer{0: d0}, map[int]*redistest.Proxy{1: proxies[0], 2: proxies[1]}, wcfg)

	ctx := ctxTimeout(t, 10*time.Second)
	warm(t, ctx, w)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}

	run := racers(t, ctx, name)

	for _, p := range proxies {
		p.SetLatency(300 * time.Millisecond)
	}
	d0.Partition()
	run.start("W", w)
	waitWaiters(t, servers[1], name, 1)
	waitWaiters(t, servers[2], name, 1)
	time.Sleep(5 * time.Millisecond)
	run.start("H", h)
	waitWaiters(t, servers[0], name, 1)
	waitWaiters(t, servers[1], name, 2)
	waitWaiters(t, servers[2], name, 2)
	time.Sleep(5 * time.Millisecond)
	d0.Resume() // W's acquire reaches master 0 now, after H's
	waitWaiters(t, servers[0], name, 2)
	time.Sleep(400 * time.Millisecond) // W hears masters 1 and 2
	for _, p := range proxies {
		p.SetLatency(0)
	}
	time.Sleep(300 * time.Millisecond) // the watches subscribe
	logWaitLists(t, servers, name)

	wantTakenAfterRelease(t, ctx, l, run, servers, name)
}

// H's acquire runs on master 0 before W's, but its answer comes after H's
// attempt was decided; on masters 1 and 2 it runs after W's. H is first on
// master 0 only, W first on 1 and 2 and truly behind on 0. Before, H never
// learned its place on master 0: a grant answers no place, and the late
// refusal that did was read only by the clean-up. After the release H,
// woken, won master 0 and lost 1 and 2 (carrying its later place), W slept
// behind, and nobody took the lock until W's backoff (7 of 13 runs failed;
// 2,200 to 2,634 scripts on master 0 in 2s). The clean-up now hands the
// places it reads to the waiter's next attempt. Found by an adversarial
// read of TestWaiterRankedLateOnMasterZeroTakesTheLock's fix.
func TestWaiterLearnsPlaceFromLateAnswer(t *testing.T) {
	const name = "unheard"
	servers := masters(t, 3)
	slow := minuteBackoff
	holder := newClient(t, servers, slow)
	w := newClient(t, servers, slow)

	p0 := redistest.ProxyN(t, servers[:1])[0]
	d12 := redistest.NewLateDialer()
	t.Cleanup(d12.Close)
	hcfg := slow
	hcfg.NodeTimeout = 5 * time.Second
	h := viaClient(t, servers, map[int]*redistest.LateDialer{1: d12, 2: d12}, map[int]*redistest.Proxy{0: p0}, hcfg)

	ctx := ctxTimeout(t, 10*time.Second)
	warm(t, ctx, h)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, name)

	run := racers(t, ctx, name)

	p0.SetLatency(300 * time.Millisecond)
	d12.Partition()
	run.start("H", h)
	waitWaiters(t, servers[0], name, 1) // H at master 0, answer held back
	time.Sleep(5 * time.Millisecond)
	run.start("W", w)
	waitWaiters(t, servers[0], name, 2)
	waitWaiters(t, servers[1], name, 1)
	waitWaiters(t, servers[2], name, 1)
	time.Sleep(5 * time.Millisecond)
	d12.Resume() // H reaches 1 and 2 after W, hears them, decides
	waitWaiters(t, servers[1], name, 2)
	waitWaiters(t, servers[2], name, 2)
	time.Sleep(400 * time.Millisecond) // H's master-0 answer arrives, unread
	p0.SetLatency(0)
	time.Sleep(300 * time.Millisecond)
	logWaitLists(t, servers, name)
	wantTakenAfterRelease(t, ctx, l, run, servers, name)
}

// A waiter asleep behind another learns, from answers that came after its
// attempt was decided, that a master ranks it first at a place the others
// never heard, and tries again with it at once. 5 masters; a registration
// that does not lapse stands first on master 2 (a waiter that died, for
// the test's length), so a winner needs 3 of masters 0, 1, 3 and 4.
//  1. W's acquires reach masters 3 and 4 first (their answers held back);
//     its writes to masters 0-2 are held.
//  2. H's acquires reach masters 0 and 1 first (its writes to 3 and 4 held).
//  3. W's writes to masters 0-2 go: W is behind H there, its attempt lost
//     on three refusals; it sleeps behind (master 0 says so).
//  4. H's writes to 3 and 4 go: behind W there, at W's earlier place.
//  5. W's answers from masters 3 and 4 come: its clean-up reads its place.
//
// H is first on 0 and 1 only, W on 3 and 4 only. Before, W kept its place
// for the next attempt but slept until its backoff (a minute here), and
// nobody took the lock after the release; now it tries again with its
// place, and masters 0 and 1 move it up before H.
func TestWaiterWokenByPlaceFromLateAnswer(t *testing.T) {
	const name = "late-place"
	servers := masters(t, 5)
	slow := minuteBackoff
	slow.NodeTimeout = 5 * time.Second
	holder := newClient(t, servers, slow)
	wFirst, wLate := redistest.NewLateDialer(), redistest.NewLateDialer()
	hLate := redistest.NewLateDialer()
	for _, d := range []*redistest.LateDialer{wFirst, wLate, hLate} {
		t.Cleanup(d.Close)
	}
	w := dialedClient(t, servers, map[int]*redistest.LateDialer{0: wLate, 1: wLate, 2: wLate, 3: wFirst, 4: wFirst}, slow)
	h := dialedClient(t, servers, map[int]*redistest.LateDialer{3: hLate, 4: hLate}, slow)
	ctx := ctxTimeout(t, 20*time.Second)
	for _, c := range []*distlock.Client{w, h} { // connections up
		if _, err := c.Status(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, name)
	key := "distlock:" + name
	tag := "{" + keyslot.Tag(keyslot.Slot(key)) + "}"
	for _, cmd := range [][]string{
		{"ZADD", "distlock:wait:" + tag + key, "1", "dead-waiter"},
		{"ZADD", "distlock:lapse:" + tag + key, "9999999999999", "dead-waiter"},
		{"PEXPIRE", "distlock:wait:" + tag + key, "60000"},
		{"PEXPIRE", "distlock:lapse:" + tag + key, "60000"},
	} {
		if _, err := servers[2].Do(cmd...); err != nil {
			t.Fatal(err)
		}
	}

	run := racers(t, ctx, name)
	var learnt atomic.Int32
	defer distlock.SetLearntHook(func(string) { learnt.Add(1) })()
	wFirst.Mute()
	wLate.Partition()
	hLate.Partition()
	run.start("W", w) // 1.
	waitWaiters(t, servers[3], name, 1)
	waitWaiters(t, servers[4], name, 1)
	time.Sleep(5 * time.Millisecond)
	run.start("H", h) // 2.
	waitWaiters(t, servers[0], name, 1)
	waitWaiters(t, servers[1], name, 1)
	time.Sleep(5 * time.Millisecond)
	wLate.Resume() // 3.
	waitWaiters(t, servers[0], name, 2)
	waitWaiters(t, servers[1], name, 2)
	time.Sleep(100 * time.Millisecond) // W's attempt decided
	hLate.Resume()                     // 4.
	waitWaiters(t, servers[3], name, 2)
	waitWaiters(t, servers[4], name, 2)
	time.Sleep(100 * time.Millisecond)
	wFirst.Unmute() // 5.
	time.Sleep(300 * time.Millisecond)
	logWaitLists(t, servers, name)
	wantTakenAfterRelease(t, ctx, l, run, servers, name)
	if learnt.Load() == 0 {
		t.Errorf("W was never woken for the place masters 3 and 4 gave it; want it to carry that place before the release")
	}
}

// A waiter's first attempt carries no place, so every place a late answer
// gave it looked earlier, and woke it for an attempt that taught nothing:
// one more attempt per waiting Acquire (found by an adversarial read of
// TestWaiterWokenByPlaceFromLateAnswer's fix; 6 of 10 runs). A waiter
// master 0 does not put behind is not woken for a place either: the
// release wakes it, and it carries the place then.
func TestFirstAttemptNotWokenByLatePlace(t *testing.T) {
	const name = "first-late"
	servers := masters(t, 3)
	slow := minuteBackoff
	holder := newClient(t, servers, slow)
	w := newClient(t, servers, slow)
	ctx := ctxTimeout(t, 5*time.Second)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	heldEverywhere(t, servers, name)
	var woken atomic.Int32
	defer distlock.SetLearntHook(func(string) { woken.Add(1) })()
	for range 5 {
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		if _, err := w.Acquire(wctx, name); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire of a held lock: %v; want it to wait until its ctx ends", err)
		}
		cancel()
		// Alone in line: the last Acquire's leave, sent in the
		// background, has landed everywhere (a CI run under load had the
		// next one queue behind it on master 0, and a wake was then due).
		noWaitListKeys(t, servers, time.Second)
	}
	if n := woken.Load(); n > 0 {
		t.Errorf("5 waits of one waiter, alone in line: woken %d times for a place a late answer gave it; want none", n)
	}
}

// racer is one waiting Acquire that racers started, as it ended.
type racer struct {
	who string
	at  time.Time
	err error
}

// racers returns a racerSet of waiting Acquires of name under ctx.
func racers(t *testing.T, ctx context.Context, name string) *racerSet {
	r := &racerSet{ctx: ctx, name: name, got: make(chan racer, 8)}
	t.Cleanup(r.wg.Wait)
	return r
}

// racerSet starts waiting Acquires of one name, each holding the lock
// 20ms if it gets it; their ends come on got, in order.
type racerSet struct {
	ctx     context.Context
	name    string
	got     chan racer
	wg      sync.WaitGroup
	started int
}

// start starts a waiting Acquire on c, named who in the test's log.
func (r *racerSet) start(who string, c *distlock.Client) {
	r.started++
	r.wg.Go(func() {
		l, err := c.Acquire(r.ctx, r.name)
		r.got <- racer{who, time.Now(), err}
		if err == nil {
			time.Sleep(20 * time.Millisecond)
			l.Release(r.ctx)
		}
	})
}

// wantTakenAfterRelease releases l and wants one of run's waiters to take
// the lock within a second, and every one of them to get it in turn.
func wantTakenAfterRelease(t *testing.T, ctx context.Context, l *distlock.Lease, run *racerSet, servers []*redistest.Server, name string) {
	t.Helper()
	before := scriptCalls(t, servers[0])
	released := time.Now()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-run.got:
		if r.err != nil {
			t.Fatalf("%s: %v", r.who, r.err)
		}
		t.Logf("%s took the lock %v after the release", r.who, r.at.Sub(released))
		if d := r.at.Sub(released); d > time.Second {
			t.Errorf("%s took the lock %v after the release; want within 1s", r.who, d)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("no waiter took the lock within 2s of the release; master 0 ran %d scripts meanwhile", scriptCalls(t, servers[0])-before)
		logWaitLists(t, servers, name)
	}
	for range run.started - 1 {
		if r := <-run.got; r.err != nil {
			t.Errorf("%s: %v", r.who, r.err)
		}
	}
}

// logWaitLists logs name's waiting list on each server, with the places.
func logWaitLists(t *testing.T, servers []*redistest.Server, name string) {
	t.Helper()
	for i, s := range servers {
		for _, k := range doList(t, s, "KEYS", "distlock:wait:*"+name) {
			t.Logf("master %d line: %v", i, doList(t, s, "ZRANGE", k, "0", "-1", "WITHSCORES"))
		}
	}
}

// warm takes and releases a lock with c, so that its connections are up
// and its scripts loaded on every master.
func warm(t *testing.T, ctx context.Context, c *distlock.Client) {
	t.Helper()
	l, err := c.TryAcquire(ctx, "warm")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestWaiterBehindAtClose: Close while a waiting Acquire's first attempt,
// which master 0 answered "behind", is being decided. Its name is then
// added to a closed watch hub, which kept no state for it, and the
// waiter's schedule asked that state whether master 0 is heard: a nil
// dereference that killed the process (an adversarial read of the
// schedule of waiters behind another). A closed hub's names now have a
// state in which no master is known. One master, so that its answer is
// in every verdict.
func TestWaiterBehindAtClose(t *testing.T) {
	const name = "behindatclose"
	servers := masters(t, 1)
	holder := newClient(t, servers, distlock.Config{TTL: time.Minute})
	first := newClient(t, servers, distlock.Config{})
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := holder.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: it runs after firstInLine's (made later),
	// so the first waiter gives up before the lock is free.
	t.Cleanup(func() { l.Release(ctx) })
	firstInLine(t, ctx, servers, first, name)
	defer distlock.SetWatchHook(func(n string) {
		if n == name {
			// Close stops the watches at once (c holds no lease), but
			// waits for this Acquire to return before it returns.
			go c.Close()
			time.Sleep(50 * time.Millisecond)
		}
	})()
	if _, err := c.Acquire(ctx, name); !errors.Is(err, distlock.ErrClosed) {
		t.Errorf("Acquire as its Client closed: %v; want ErrClosed", err)
	}
}
