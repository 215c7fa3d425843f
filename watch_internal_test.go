package distlock

import (
	"context"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/redistest"
)

// A waiter that joins a name still subscribed (lingering after the last
// waiter) sends nothing, so no read wakes it: it is woken at once when the
// lock is known to be free, as a fresh subscription's read would.
func TestWaiterOnLingeringNameWokenWhenFree(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{})
	c, err := New(Config{Nodes: redistest.URLs(servers)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, err := c.newRequest("acquire", "free", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := &waker{ch: make(chan struct{}, 1), value: "a"}
	nw, _ := c.watches.add(context.Background(), req, nil, first)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.watches.mu.Lock()
		started := nw.state.Started()
		c.watches.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no quorum state after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.watches.remove(nw, nil, first) // the name lingers, subscribed
	next := &waker{ch: make(chan struct{}, 1), value: "b"}
	again, _ := c.watches.add(context.Background(), req, nil, next)
	defer c.watches.remove(again, nil, next)
	if again != nw {
		t.Fatal("a new name state for a lingering name; want the same")
	}
	select {
	case <-next.ch:
	case <-time.After(time.Second):
		t.Fatal("waiter on a free, lingering name not woken")
	}
}

// A waiter behind another, whose last attempt some masters failed and
// others granted (waker.own set), is woken when master 0 announces it
// first while the lock is free (the one before gave up): its own clean-up
// cannot have moved it from behind to first (adversarial read: it slept
// out its backoff with the lock free).
func TestWaiterWithOwnValueWokenWhenAnnouncedFirst(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{})
	c, err := New(Config{Nodes: redistest.URLs(servers)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, err := c.newRequest("acquire", "announced", nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &waker{ch: make(chan struct{}, 1), value: "b"}
	nw, _ := c.watches.add(context.Background(), req, nil, k)
	defer c.watches.remove(nw, nil, k)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.watches.mu.Lock()
		free := nw.state.Started() && nw.state.Free()
		c.watches.mu.Unlock()
		if free {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no free state after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select { // a wake of the subscription's first read
	case <-k.ch:
	default:
	}
	c.watches.setBehind(nw, k, true, true, true, "b-last-value")
	c.watches.mu.Lock()
	nw.announceHead("b")
	c.watches.mu.Unlock()
	select {
	case <-k.ch:
	case <-time.After(time.Second):
		t.Fatal("a waiter behind, announced first while the lock is free, not woken")
	}
}

// A read of master 0's line that found it empty, answered after an
// attempt marked a waiter behind another (the other joined after the read
// was sent), does not clear the mark: only a read sent after the last mark
// speaks for the line as the waiters know it (adversarial read of the
// empty-line fix: every waiter of the name woke at the next release, the
// ones really behind for nothing).
func TestWakerStaleEmptyLineKeepsMark(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{})
	c, err := New(Config{Nodes: redistest.URLs(servers)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, err := c.newRequest("acquire", "stale-line", nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &waker{ch: make(chan struct{}, 1), value: "w"}
	nw, _ := c.watches.add(context.Background(), req, nil, k)
	defer c.watches.remove(nw, nil, k)
	c.watches.mu.Lock()
	sent := nw.marks // the read goes out
	c.watches.mu.Unlock()
	c.watches.setBehind(nw, k, true, true, true, "") // an attempt: behind another
	c.watches.mu.Lock()
	nw.lineRead(nil, sent) // the read's answer: no line
	stale := k.behind && k.sleeps
	sent = nw.marks // a read sent now
	nw.lineRead(nil, sent)
	fresh := !k.behind && !k.sleeps
	c.watches.mu.Unlock()
	if !stale {
		t.Error("an empty line read before the attempt cleared its mark")
	}
	if !fresh {
		t.Error("an empty line read after the attempt left it marked behind")
	}
}
