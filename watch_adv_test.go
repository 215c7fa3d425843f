package distlock_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// Found by an adversarial read of Watch (helper, 2026-12-06).

// watchLagWindow is internal/watch.LagWindow, which docs/watch.md states.
const watchLagWindow = 300 * time.Millisecond

// A second Watch of a name this Client already watches, on a lock held at
// that moment, gets its Initial acquired event from watchHub.add
// (watch_hub.go), which built it without Owner or Metadata. docs/watch.md:
// "Each event names the holder: Owner ... and Metadata ... of the new holder
// for acquired".
func TestWatchSecondWatcherInitialOwner(t *testing.T) {
	const name = "wadv/initial-owner"
	w := heldByAlice(t, name, distlock.Config{})
	first, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	wantInitialByAlice(t, "first watcher", next(t, first, 2*time.Second))
	second, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	wantInitialByAlice(t, "second watcher", next(t, second, 2*time.Second))
}

// The same, where the name was first subscribed by a waiting Acquire of the
// watching Client (not by a Watch).
func TestWatchAfterWaiterInitialOwner(t *testing.T) {
	const name = "wadv/initial-owner-waiter"
	w := heldByAlice(t, name, distlock.Config{Owner: "bob"})
	wctx, wcancel := context.WithCancel(t.Context())
	defer wcancel()
	go w.Acquire(wctx, name) // waits: subscribes the name
	time.Sleep(500 * time.Millisecond)
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	wantInitialByAlice(t, "watcher", next(t, events, 2*time.Second))
}

// A Watch started again within watchLinger (1 s) of the last one ending,
// on a held lock (the name still subscribed, its state kept): the Initial
// event comes from watchHub.add, which built it without Owner or Metadata.
func TestRewatchInitialOwner(t *testing.T) {
	const name = "wadv/rewatch"
	w := heldByAlice(t, name, distlock.Config{})
	ctx1, cancel1 := context.WithCancel(t.Context())
	ev1, err := w.Watch(ctx1, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first Watch: %+v", next(t, ev1, 2*time.Second))
	cancel1()
	time.Sleep(100 * time.Millisecond)
	ev2, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	wantInitialByAlice(t, "Watch again", next(t, ev2, 2*time.Second))
}

// heldByAlice starts 3 masters, has a Client with Owner "alice" hold name
// with metadata "job-7" until the test ends, and returns another Client
// with cfg on the same masters, to watch it.
func heldByAlice(t *testing.T, name string, cfg distlock.Config) *distlock.Client {
	t.Helper()
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{Owner: "alice"})
	w := newClient(t, servers, cfg)
	l, err := c.Acquire(t.Context(), name, distlock.WithMetadata("job-7"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	return w
}

// wantInitialByAlice fails the test unless ev is the Initial acquired
// event of heldByAlice's lease.
func wantInitialByAlice(t *testing.T, what string, ev distlock.Event) {
	t.Helper()
	t.Logf("%s: %+v", what, ev)
	if ev.Type != distlock.EventAcquired || !ev.Initial || ev.Owner != "alice" || ev.Metadata != "job-7" {
		t.Errorf("%s initial: got Owner=%q Metadata=%q (%+v); want acquired Initial by alice/job-7", what, ev.Owner, ev.Metadata, ev)
	}
}

// A receiver that does not read: the oldest events are dropped, the rest
// arrive in order, and the counts add up (a send that rotated the queue to
// mark the event after the dropped ones reordered events: see
// TestAdv20WatchSendKeepsOrder).
func TestWatchMissedPosition(t *testing.T) {
	const name = "wadv/missed"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	// A second watch of w's, read as events come: w's hub sends each event
	// to all of its watchers at once, so once the probe has the last
	// release, so has events.
	pctx, stopProbe := context.WithCancel(t.Context())
	defer stopProbe()
	probe, err := w.Watch(pctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// 33 holds, each with its metadata: 66 events, two more than the buffer.
	const holds = distlock.WatchBuffer/2 + 1
	lastSeen := make(chan struct{})
	go func() {
		for ev := range probe {
			if ev.Type == distlock.EventReleased && ev.Metadata == strconv.Itoa(holds-1) {
				close(lastSeen)
				return
			}
		}
	}()
	for i := range holds {
		l, err := c.Acquire(t.Context(), name, distlock.WithMetadata(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// Read nothing until the watch has sent every event: on a loaded
	// machine the last ones can still be on their way when the loop ends,
	// and reading then would make room for them (none missed).
	select {
	case <-lastSeen:
	case <-time.After(10 * time.Second):
		t.Fatal("the probe watch saw no release of the last hold within 10s")
	}
	// A barrier: another Watch of the name takes the hub's lock, which
	// the send of the last release to every watcher holds.
	bctx, stopBarrier := context.WithCancel(t.Context())
	if _, err := w.Watch(bctx, name); err != nil {
		t.Fatal(err)
	}
	stopBarrier()
	evs := collect(events, 500*time.Millisecond)
	missed, last := 0, -1
	for i, ev := range evs {
		missed += ev.Missed
		hold, _ := strconv.Atoi(ev.Metadata)
		if hold < last {
			t.Errorf("event %d (%v of hold %d) after one of hold %d: out of order", i, ev.Type, hold, last)
		}
		last = hold
	}
	if len(evs)+missed != 2*holds || missed == 0 {
		t.Errorf("received %d events, Missed %d in all; want %d in all, some missed", len(evs), missed, 2*holds)
	}
}

// A local handoff between goroutines of one Client: the keys take the next
// lease's value, and Watch sees one lease released and the next acquired
// (go doc Client.Watch said it saw the lock stay held).
func TestWatchLocalHandoffEvents(t *testing.T) {
	const name = "wadv/handoff"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{Owner: "c"})
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	l1, err := c.Acquire(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	next(t, events, 2*time.Second) // acquired
	got := acquireAsync(t, ctxTimeout(t, 5*time.Second), c, name)
	eventually(t, "a waiter queued", func() bool { return distlock.Queued(c, name) > 0 })
	if err := l1.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	l2 := <-got
	if l2 == nil {
		t.Fatal("no lease")
	}
	defer l2.Release(context.Background())
	evs := collect(events, 500*time.Millisecond)
	for _, ev := range evs {
		t.Logf("after the handoff: %v owner=%q masters=%d", ev.Type, ev.Owner, ev.Masters)
	}
	if len(evs) != 2 || evs[0].Type != distlock.EventReleased || evs[1].Type != distlock.EventAcquired || evs[1].Owner != "c" {
		t.Errorf("local handoff: got %+v; want released, then acquired by c", evs)
	}
}

// A hold on a bare majority {0, 2} while the watcher hears master 2 late
// (no connection down): within LagWindow (300 ms, internal/watch) the
// reports add up to a majority; at 600 ms, master 0's report of the hold
// ended more than LagWindow before master 2's came, so it is forgotten and
// the hold makes no event, as docs/watch.md says.
func TestWatchLagBeyondWindow(t *testing.T) {
	for _, lag := range []time.Duration{200 * time.Millisecond, 600 * time.Millisecond} {
		t.Run(lag.String(), func(t *testing.T) {
			want := 2 // acquired, released
			if lag > watchLagWindow {
				want = 0
			}
			slowMasterHold(t, lag, want)
		})
	}
}

func slowMasterHold(t *testing.T, lag time.Duration, want int) {
	const name = "wadv/slow"
	servers := masters(t, 3)
	w, proxies := proxiedWatcher(t, servers)
	c := newClient(t, servers, distlock.Config{Owner: "holder"})
	key := distlock.DefaultKeyPrefix + name
	// Master 1 is taken by another program's value for the whole test:
	// the holder gets masters 0 and 2, a bare majority.
	if _, err := servers[1].Do("SET", key, "other", "PX", "60000"); err != nil {
		t.Fatal(err)
	}
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		waitSubscribers(t, s, name, true)
	}
	time.Sleep(100 * time.Millisecond)
	noEvent(t, events, 200*time.Millisecond, "master 1 alone holds another value")
	proxies[2].SetLatency(lag)
	l, err := c.TryAcquire(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := collect(events, 2*time.Second)
	t.Logf("a 50 ms hold on masters 0 and 2, master 2 heard %v late: events %+v", lag, evs)
	if len(evs) != want {
		t.Errorf("got %d events; want %d", len(evs), want)
	}
}
