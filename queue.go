package distlock

import (
	"context"
	"sync"
)

// The local queue: goroutines of one Client that want the same name take
// turns, so that only one of them contends on the masters (acquire.go,
// "Waiting for a held lock"), and a Release can hand its lease's keys to
// the next (handoff.go).

// localQueue lets one goroutine per lock name at a time contend on the
// masters.
type localQueue struct {
	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu, keyEvents.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	mu    sync.Mutex // guards slots and each slot's fields but ch
	slots map[string]*slot
	// recent holds, per name, the value of a lease whose Release returned
	// with deletes still on their way (release.go): the next turn's first
	// attempt counts keys holding it as free, so that a master whose
	// delete is late does not refuse this Client's next acquire there.
	recent map[string]replaced
}

// replaced is a lease that has just ended, as the next acquire of its name at
// this Client takes it: keys that still hold value count as free, and a
// master where one is taken over draws a counter above counter, the one in
// the lease's token (acquire.lua), as if its release had run there first.
// A value that never was a lease's (the tie-break's kept keys) has
// counter 0.
type replaced struct {
	value   string
	counter int64
}

// slot is a name's place: a token in ch means a goroutine holds or is
// acquiring the name; refs counts that one and its waiters. When the turn
// passes with waiters queued, it carries either handoff, the lease the next
// goroutine takes over as it is (handoff.go), or released, the value of a
// lease that has just ended: the next goroutine's first attempt may take
// the keys that still hold it (see turn.pass).
type slot struct {
	ch       chan struct{}
	refs     int
	handoff  *Lease
	released replaced
	// wants counts the goroutines waiting in wait for the turn by the
	// metadata they asked for (WithMetadata): a handoff gives the next
	// lease the metadata most of them want (turn.nextMetadata).
	wants map[string]int
}

// A turn is one goroutine's turn at a name: it holds the name's slot from
// wait (or try) until done, pass or handOff.
type turn struct {
	q      *localQueue
	name   string
	s      *slot
	passed bool // guarded by q.mu

	// handoff is the lease the previous holder handed over with the turn
	// (handoff.go), for this goroutine to take as it is.
	handoff *Lease

	// replaces is the value of the lease whose Release passed this turn
	// on: a key that holds it counts as free for this turn's first attempt
	// (acquire.lua), so the lock changes hands in one round trip even
	// where the release's delete has not run yet.
	replaces replaced
}

// ref counts one more goroutine at name's slot, waiting for a lease with
// metadata, and returns the slot.
func (q *localQueue) ref(name, metadata string) *slot {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.slotLocked(name)
	s.refs++
	if s.wants == nil {
		s.wants = make(map[string]int)
	}
	s.wants[metadata]++
	return s
}

// unwant counts one goroutine fewer waiting at s with metadata. q.mu is
// held.
func (s *slot) unwant(metadata string) {
	if s.wants[metadata]--; s.wants[metadata] <= 0 {
		delete(s.wants, metadata)
	}
}

// slotLocked returns name's slot, made if there is none. q.mu is held.
func (q *localQueue) slotLocked(name string) *slot {
	s := q.slots[name]
	if s == nil {
		s = &slot{ch: make(chan struct{}, 1)}
		q.slots[name] = s
	}
	return s
}

// unref counts one goroutine fewer at name's slot. When it was the last, and
// a lease handed over with the turn was never taken (every waiter gave up
// meanwhile), its keys are deleted.
func (q *localQueue) unref(name string, s *slot) {
	q.mu.Lock()
	q.unrefLocked(name, s)
}

// unrefLocked is unref with q.mu held; it unlocks q.mu.
func (q *localQueue) unrefLocked(name string, s *slot) {
	s.refs--
	var orphan *Lease
	if s.refs == 0 {
		delete(q.slots, name)
		orphan, s.handoff = s.handoff, nil
	}
	q.mu.Unlock()
	if orphan != nil {
		orphan.discard()
	}
}

// wait blocks until it is the caller's turn for name, the caller wanting
// a lease with metadata. It fails when ctx ends (with ctx's error) or stop
// closes (ErrClosed).
func (q *localQueue) wait(ctx context.Context, stop <-chan struct{}, name, metadata string) (*turn, error) {
	s := q.ref(name, metadata)
	// A free turn is taken even when ctx has just ended, as select would
	// choose at random: the caller must not report the name held by
	// another goroutine when it was not.
	select {
	case s.ch <- struct{}{}:
		return q.took(name, s, metadata), nil
	default:
	}
	select {
	case s.ch <- struct{}{}:
		return q.took(name, s, metadata), nil
	case <-ctx.Done():
		q.gaveUp(name, s, metadata)
		return nil, ctx.Err()
	case <-stop:
		q.gaveUp(name, s, metadata)
		return nil, ErrClosed
	}
}

// gaveUp counts one goroutine fewer waiting at name's slot with metadata.
func (q *localQueue) gaveUp(name string, s *slot, metadata string) {
	q.mu.Lock()
	s.unwant(metadata)
	q.unrefLocked(name, s)
}

// try is wait that gives up at once when the turn is taken. It counts at
// the slot only once it has the turn, all under q.mu: a releasing lease
// never mistakes it for a waiter and hands it a lease it then leaves behind.
func (q *localQueue) try(name string) (*turn, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.slotLocked(name) // a new slot is free: the send below takes it
	select {
	case s.ch <- struct{}{}:
		s.refs++
		return q.tookLocked(name, s), true
	default:
		return nil, false
	}
}

// took makes the turn of the goroutine that has just taken s, having
// waited for a lease with metadata.
func (q *localQueue) took(name string, s *slot, metadata string) *turn {
	q.mu.Lock()
	defer q.mu.Unlock()
	s.unwant(metadata)
	return q.tookLocked(name, s)
}

func (q *localQueue) tookLocked(name string, s *slot) *turn {
	t := &turn{q: q, name: name, s: s, replaces: s.released, handoff: s.handoff}
	if t.replaces.value == "" {
		t.replaces = q.recent[name]
	}
	s.released, s.handoff = replaced{}, nil
	return t
}

// deleting records that value's deletes at name are still on their way
// (TestReleaseThenTryAcquireWithMasterDown).
func (q *localQueue) deleting(name string, f replaced) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.recent == nil {
		q.recent = make(map[string]replaced)
	}
	q.recent[name] = f
}

// deleted records that value's deletes at name are all answered.
func (q *localQueue) deleted(name, value string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.recent[name].value == value {
		delete(q.recent, name)
	}
}

// waited reports whether other goroutines wait for the turn's name.
func (t *turn) waited() bool {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	return !t.passed && t.s.refs > 1
}

// nextMetadata returns the metadata for the lease that a handoff passes
// with the turn: what the goroutines waiting for it asked for, the most
// common when they differ (ties go to dflt, else to the least string), and
// dflt when none waits. The goroutine that takes the turn may still want
// other metadata: it then takes the lock anew (adopt).
func (t *turn) nextMetadata(dflt string) string {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	best, n := dflt, t.s.wants[dflt]
	for m, k := range t.s.wants {
		if k > n || k == n && best != dflt && m < best {
			best, n = m, k
		}
	}
	return best
}

// done passes the turn on, once.
func (t *turn) done() { t.pass(replaced{}) }

// giveUp passes on a turn its goroutine no longer wants: with the lease
// handed over with it, if any, to the next goroutine; when none waits, that
// lease's keys are deleted.
func (t *turn) giveUp() {
	h := t.handoff
	if h == nil {
		t.pass(t.replaces)
		return
	}
	t.handoff = nil
	if t.handOff(h) {
		return
	}
	h.discard()
	t.pass(h.replaced())
}

// pass passes the turn on, once. released, when not empty, is the value of
// the lease that has just been released: the next goroutine's first
// attempt may replace keys that still hold it. Handing it over is always
// safe, however late the next goroutine comes: the lease has ended, and
// its keys are being deleted anyway.
func (t *turn) pass(released replaced) { t.give(released, nil) }

// handOff passes the turn on with next, the lease the next goroutine is to
// take over (handoff.go), and reports true; when no goroutine waits, it
// reports false and keeps the turn.
func (t *turn) handOff(next *Lease) bool { return t.give(replaced{}, next) }

func (t *turn) give(released replaced, next *Lease) bool {
	q := t.q
	q.mu.Lock()
	if t.passed || (next != nil && t.s.refs < 2) {
		q.mu.Unlock()
		return false
	}
	t.passed = true
	if t.s.refs > 1 { // someone waits
		t.s.released, t.s.handoff = released, next
	}
	q.mu.Unlock()
	<-t.s.ch
	q.unref(t.name, t.s)
	return true
}
