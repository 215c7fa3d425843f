package distlock_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// These tests put a TCP proxy (redistest.Proxy) between the watching
// Client and each master, so that the watcher's connections can be cut
// while the masters keep running and another Client, connected directly,
// takes and releases the lock: what was published during the cut never
// reaches the watcher, which must recover the state by reading the key
// when it subscribes again.

// cutEventWait bounds the wait for each event. Reconnecting after a cut
// takes the watcher's reconnect backoff (50 ms doubling, at most 2 s).
const cutEventWait = 5 * time.Second

// proxiedWatcher returns a Client that reaches each master through its own
// proxy, and the proxies. The Client is closed, then the proxies, when the
// test ends.
func proxiedWatcher(t *testing.T, servers []*redistest.Server) (*distlock.Client, []*redistest.Proxy) {
	t.Helper()
	proxies := redistest.ProxyN(t, servers)
	nodes := make([]string, len(proxies))
	for i, p := range proxies {
		nodes[i] = p.URL()
	}
	c, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		t.Fatalf("New through proxies: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c, proxies
}

// nextCut returns the next event on ch, failing after cutEventWait.
func nextCut(t *testing.T, ch <-chan distlock.Event, what string) distlock.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("%s: watch channel closed; want an event", what)
		}
		return ev
	case <-time.After(cutEventWait):
		t.Fatalf("%s: no event within %v", what, cutEventWait)
	}
	return distlock.Event{}
}

// wantEvent fails the test unless the next event on ch has type want and
// is agreed on by at least a majority of 3 masters.
func wantEvent(t *testing.T, ch <-chan distlock.Event, want distlock.EventType, what string) distlock.Event {
	t.Helper()
	ev := nextCut(t, ch, what)
	if ev.Type != want || ev.Initial {
		t.Fatalf("%s: got %+v; want %v", what, ev, want)
	}
	if ev.Masters < 2 {
		// With a master cut, a release must wait for both masters
		// still reachable: the cut one may hold the value yet.
		t.Errorf("%s: got %+v; want Masters >= 2 (a majority of 3)", what, ev)
	}
	return ev
}

// noEvent reports an error if an event arrives on ch within d.
func noEvent(t *testing.T, ch <-chan distlock.Event, d time.Duration, what string) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Errorf("%s: got %+v; want no event", what, ev)
		} else {
			t.Fatalf("%s: watch channel closed; want it open", what)
		}
	case <-time.After(d):
	}
}

// keyspaceChannel is name's keyspace notification channel in db 0.
func keyspaceChannel(name string) string {
	return "__keyspace@0__:" + distlock.DefaultKeyPrefix + name
}

// waitSubscribers waits until master s has a subscriber on name's
// keyspace channel (want true) or none (want false). Only the watcher
// subscribes: the direct Client never waits for the lock, so it never
// subscribes.
func waitSubscribers(t *testing.T, s *redistest.Server, name string, want bool) {
	t.Helper()
	channel := keyspaceChannel(name)
	deadline := time.Now().Add(cutEventWait)
	for {
		out, err := s.Do("PUBSUB", "NUMSUB", channel)
		if err == nil && strings.HasSuffix(out, "\n0") != want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: PUBSUB NUMSUB %s on %s: got %q, %v; want subscribed %v", cutEventWait, channel, s.Addr(), out, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cut cuts the watcher's connections to the masters servers[i] for each i,
// and waits until the masters have dropped its subscriptions and the
// watcher has had time to see its connections close.
func cut(t *testing.T, servers []*redistest.Server, proxies []*redistest.Proxy, name string, idx ...int) {
	t.Helper()
	for _, i := range idx {
		proxies[i].Cut()
	}
	for _, i := range idx {
		waitSubscribers(t, servers[i], name, false)
	}
	time.Sleep(100 * time.Millisecond)
}

func TestWatchConnectionCut(t *testing.T) {
	// The watcher loses master 0 while the lock is held; the holder
	// releases it then, so master 0's "del" never reaches the watcher. The
	// other two masters still make a majority: the release is reported.
	// After Restore the watcher resubscribes on master 0 and reads the key.
	t.Run("minority", func(t *testing.T) {
		servers := masters(t, 3)
		w, proxies := proxiedWatcher(t, servers)
		c := newClient(t, servers, distlock.Config{})
		const name = "cut-minority"
		events, err := w.Watch(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}

		l, err := c.Acquire(ctxTimeout(t, cutEventWait), name)
		if err != nil {
			t.Fatal(err)
		}
		wantEvent(t, events, distlock.EventAcquired, "after Acquire")

		cut(t, servers, proxies, name, 0)
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, events, distlock.EventReleased, "after Release with master 0 cut")
		noLockKeys(t, servers)
		proxies[0].Restore()
		waitSubscribers(t, servers[0], name, true)
		noEvent(t, events, 100*time.Millisecond, "master 0 restored, lock free everywhere")

		l, err = c.Acquire(ctxTimeout(t, cutEventWait), name)
		if err != nil {
			t.Fatal(err)
		}
		wantEvent(t, events, distlock.EventAcquired, "after the second Acquire")

		// Master 0's subscription works again: with master 1 cut now, the
		// release can only be seen through masters 0 and 2.
		cut(t, servers, proxies, name, 1)
		noEvent(t, events, 100*time.Millisecond, "master 1 cut while the lock is held on all three")
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, events, distlock.EventReleased, "after the second Release, master 1 cut")
		proxies[1].Restore()
		waitSubscribers(t, servers[1], name, true)
		noEvent(t, events, 100*time.Millisecond, "master 1 restored, lock free everywhere")
	})

	// The watcher loses a majority while the lock is held; the holder
	// releases it then. Nothing can be said until a majority is back, and
	// the only way to learn of the release is to read the key after
	// subscribing again: the "del" events are gone.
	t.Run("majority", func(t *testing.T) {
		servers := masters(t, 3)
		w, proxies := proxiedWatcher(t, servers)
		c := newClient(t, servers, distlock.Config{})
		const name = "cut-majority"
		events, err := w.Watch(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}

		l, err := c.Acquire(ctxTimeout(t, cutEventWait), name)
		if err != nil {
			t.Fatal(err)
		}
		wantEvent(t, events, distlock.EventAcquired, "after Acquire")

		cut(t, servers, proxies, name, 0, 1)
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		noLockKeys(t, servers)
		// Only master 2 is known to the watcher: too few to call it free.
		noEvent(t, events, 300*time.Millisecond, "released while a majority is cut")

		proxies[0].Restore()
		proxies[1].Restore()
		wantEvent(t, events, distlock.EventReleased, "after Restore of the majority")
		waitSubscribers(t, servers[0], name, true)
		waitSubscribers(t, servers[1], name, true)
		noEvent(t, events, 100*time.Millisecond, "both restored, lock free everywhere")

		// And the watch goes on as before the cut.
		l, err = c.Acquire(ctxTimeout(t, cutEventWait), name)
		if err != nil {
			t.Fatal(err)
		}
		wantEvent(t, events, distlock.EventAcquired, "after the second Acquire")
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, events, distlock.EventReleased, "after the second Release")
	})

	// The holder dies while the watcher has lost a majority: its keys
	// expire during the cut. After Restore the lock is free, and it went
	// by expiry, not by release.
	t.Run("expiry during majority cut", func(t *testing.T) {
		servers := masters(t, 3)
		w, proxies := proxiedWatcher(t, servers)
		const name = "cut-expiry"
		for _, s := range servers {
			if _, err := s.Do("SET", distlock.DefaultKeyPrefix+name, "dead-holder", "PX", "800"); err != nil {
				t.Fatal(err)
			}
		}
		events, err := w.Watch(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if ev := nextCut(t, events, "on a held lock"); ev.Type != distlock.EventAcquired || !ev.Initial {
			t.Fatalf("first event on a held lock: got %+v; want initial acquired", ev)
		}
		cut(t, servers, proxies, name, 0, 1)
		noLockKeys(t, servers) // waits out the TTL
		proxies[0].Restore()
		proxies[1].Restore()
		ev := nextCut(t, events, "after Restore")
		if ev.Type != distlock.EventExpired {
			// The masters' last word before the cut (held, until when)
			// is kept while they are unreachable, so a key found gone
			// after its known expiry is reported as expired.
			t.Errorf("after the keys expired during the cut: got %+v; want expired", ev)
		}
	})

	// The lock is held on exactly a majority (masters 0 and 1; master 2
	// missed the acquire). Losing the watcher's connection to master 0
	// leaves one master known to hold it and one known free: that is no
	// reason to report a release, and there was none.
	t.Run("bare majority", func(t *testing.T) {
		servers := masters(t, 3)
		w, proxies := proxiedWatcher(t, servers)
		const name = "cut-bare"
		for _, s := range servers[:2] {
			if _, err := s.Do("SET", distlock.DefaultKeyPrefix+name, "holder", "PX", "10000"); err != nil {
				t.Fatal(err)
			}
		}
		events, err := w.Watch(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		ev := nextCut(t, events, "on a held lock")
		if ev.Type != distlock.EventAcquired {
			t.Fatalf("first event on a held lock: got %+v; want initial acquired", ev)
		}
		if !ev.Initial {
			// Whatever order the masters' first reads come in: master
			// 2's (free) and master 0's (held) must not settle the first
			// state as free.
			t.Errorf("first event on a held lock: got %+v; want Initial set", ev)
		}
		cut(t, servers, proxies, name, 0)
		// Master 1 holds, master 2 is free, master 0 is unknown: no
		// change can be told.
		noEvent(t, events, 300*time.Millisecond, "master 0 cut, lock still held on masters 0 and 1")
		proxies[0].Restore()
		waitSubscribers(t, servers[0], name, true)
		noEvent(t, events, 300*time.Millisecond, "master 0 restored, lock still held")
	})
}

// Issue 21 item 2: the watcher hears master 1 15 ms and master 2 30 ms
// late; the holder reaches every master at once. A hold of a few ms ends
// on master 0's stream before it begins on the others': the masters never
// agree at one instant as the watcher sees them, and such holds made no
// event. Each is now reported, acquired then released.
func TestWatchMastersAtDifferentSpeeds(t *testing.T) {
	servers := masters(t, 3)
	w, proxies := proxiedWatcher(t, servers)
	c := newClient(t, servers, distlock.Config{})
	const name = "speeds"
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		waitSubscribers(t, s, name, true)
	}
	time.Sleep(100 * time.Millisecond) // the last master's first read
	proxies[1].SetLatency(15 * time.Millisecond)
	proxies[2].SetLatency(30 * time.Millisecond)
	for i, hold := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 10 * time.Millisecond, time.Millisecond, 2 * time.Millisecond, 10 * time.Millisecond} {
		l, err := c.TryAcquire(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(hold)
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, events, distlock.EventAcquired, fmt.Sprintf("cycle %d, held %v", i, hold))
		wantEvent(t, events, distlock.EventReleased, fmt.Sprintf("cycle %d, released after %v", i, hold))
	}
	noEvent(t, events, 100*time.Millisecond, "after the last release")
}

// Issue 21 item 4: the holder is cut from masters 1 and 2. Its lease is
// lost, its Client deletes its key on master 0, and the keys on masters 1
// and 2 expire: a majority saw no delete, so the lease expired (it was
// reported released).
func TestWatchLostLeaseExpires(t *testing.T) {
	servers := masters(t, 3)
	holder, proxies := proxiedWatcher(t, servers)
	w := newClient(t, servers, distlock.Config{})
	const name = "lost"
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 600 * time.Millisecond
	l, err := holder.Acquire(ctxTimeout(t, cutEventWait), name, distlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	wantEvent(t, events, distlock.EventAcquired, "after Acquire")
	proxies[1].Cut()
	proxies[2].Cut()
	select {
	case <-l.Done():
	case <-time.After(2 * ttl):
		t.Fatalf("lease not lost within %v of its masters 1 and 2 cut", 2*ttl)
	}
	ev := nextCut(t, events, "after the lease was lost")
	if ev.Type != distlock.EventExpired {
		t.Errorf("lease lost, its keys expired on masters 1 and 2: got %+v; want expired", ev)
	}
}
