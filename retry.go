package distlock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// keptRetryDelay is how soon the waiter that won master 0 tries again.
const keptRetryDelay = time.Millisecond

// Waiting for a held lock.
//
// Several waiters racing on every master can split the vote: each wins
// some masters, none a majority, and all lose round after round; their
// deletes then wake everyone again. Jitter alone does not end it. So
// master 0 breaks ties: a waiter that won master 0 but not a majority keeps
// its keys and retries soon, with a new value that may replace the kept
// keys (acquire.lua's ARGV[6]), while the others delete theirs and back
// off. Only one waiter can hold master 0, so the next round is
// its. When master 0 is down, jitter alone remains.
//
// Every master also keeps the order: a waiting Acquire joins a waiting
// list on each master that refuses it (a sorted set, by arrival), and
// renews its place at every attempt; a master grants a free lock only to
// the first in its line. A waiter is ranked by its arrival time, the
// earliest any master gave it, which it carries to the others at its next
// attempts, so that the masters agree on the order: waiters of different
// Clients take the lock in order of arrival, whichever masters each can
// reach, and the tie-break always favours the longest waiter. (With the
// line on master 0 alone, a waiter that could not reach master 0 was never
// seen by the handoffs of a busy Client and starved; one that could reach
// only master 0 stood first in line in everyone's way:
// TestWaiterCutFromMasterZeroIsServed, TestWaiterReachingOnlyMasterZero.)
// A waiter whose attempt a majority of masters did not answer leaves
// every line until one does; it keeps its arrival time and comes back to
// its place. A waiter that vanishes without leaving (a crash) holds its
// place until its registration lapses: max(1s, 4*RetryMaxDelay). Each
// Acquire keeps one waiter id for all its attempts, which is its place in
// line, and draws a fresh value for each attempt: a value is never used
// again once a command carrying it had an unknown outcome, so that a late
// delete of an earlier attempt can never remove a later lease's key (see
// try).
//
// Only the first in line is woken when the lock comes free. A waiter that
// master 0 said is behind another sleeps through releases until master 0
// announces it first (leave.lua publishes the new first when the one
// before wins or gives up; watch.go wakes that waiter). A first in line
// that died is found lapsed only by an attempt, and nothing announces the
// next: so a waiter behind never sleeps past the moment a master said the
// first in line's place lapses unless renewed (which, with Clients
// configured alike, its backoff reaches first anyway).
//
// Within one Client, goroutines that want the same name queue locally: only
// the head of the queue contends on the masters, so a Client never splits
// the vote with itself, and the queue's order is the order of arrival.
// Release hands its lease's keys to the next goroutine in one round trip,
// which draws the new token where the keys still hold the value
// (handoff.go). When it cannot (a waiter of another Client first in line
// on a master, master 0 silent, or the keys no longer held by a majority), it deletes
// them and passes the turn on once the deletes are answered, with the
// released lease's value (turn.pass): the next goroutine's first attempt
// counts keys that still hold that value as free.
// Between Clients, a waiter retries after a jittered exponential backoff
// (Config.RetryMinDelay to RetryMaxDelay), never later than the holder's
// remaining TTL as the masters reported it; the jitter spreads waiters of
// different Clients apart so that one of them wins a round.

// Acquire takes the lock name and returns its lease. It blocks until the
// lock is held, or until ctx ends; then it returns the last attempt's error
// joined with ctx.Err(), so that both errors.Is(err, ErrLocked) (or
// ErrNoQuorum) and errors.Is(err, context.DeadlineExceeded) hold. ctx
// bounds the wait, not the lease; Acquire never returns a lease once ctx
// has ended (one taken as it ended is released, or handed to this Client's
// next waiter). It returns at once an error for an
// invalid name or option, ErrClosed once the Client is closed, and ctx's
// error when ctx has already ended.
//
// Goroutines of one Client that wait for the same name queue in order of
// arrival, and a lease of this Client that holds the name hands its keys to
// the first of them when it is released, in one round trip to the masters:
// the new lease's token is drawn then, on a majority where the keys still
// hold their value, and is larger than every earlier lease's; the keys
// take the new lease's own value in the same script (Watch sees one lease
// released and the next acquired). A waiter of another Client that is
// first in line on any master is never passed over: the holder then
// deletes its keys, and the lock goes to that waiter.
func (c *Client) Acquire(ctx context.Context, name string, opts ...Option) (*Lease, error) {
	req, err := c.newRequest("acquire", name, opts)
	if err != nil {
		return nil, err
	}
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.exit()
	ctx, call := c.startAcquire(ctx, modeWait, req)
	l, err := c.acquire(ctx, req, &call)
	l, err = c.notAfter(ctx, req, l, err)
	c.endAcquire(ctx, &call, l, err)
	return l, err
}

// notAfter returns l and err, unless ctx ended before the lock was taken:
// then it releases l (which hands the lock on to this Client's next
// waiter, if any) and returns ctx's error. A caller that gave up must not
// find itself holding a lease it no longer expects
// (TestAcquireHandedOverAsCtxEnds, TestAcquireNoLeaseAfterCtx).
func (c *Client) notAfter(ctx context.Context, req *request, l *Lease, err error) (*Lease, error) {
	if l == nil || ctx.Err() == nil {
		return l, err
	}
	c.spawn(func() {
		rctx, cancel := context.WithTimeout(c.bg, l.TTL())
		defer cancel()
		l.Release(rctx)
	})
	return nil, fmt.Errorf("distlock: acquire %q: %w", req.name, ctx.Err())
}

// testHookTurn, when set (by tests only), runs when a waiting Acquire has
// its turn at name, before it takes over a lease handed to it.
// testHookWatch, likewise, runs when a waiting Acquire's first attempt has
// failed, before it watches name for wake-ups.
var testHookTurn, testHookWatch atomic.Pointer[func(name string)]

// runHook runs the test hook h holds, if any.
func runHook(h *atomic.Pointer[func(name string)], name string) {
	if f := h.Load(); f != nil {
		(*f)(name)
	}
}

// acquire is Acquire once the request is checked.
func (c *Client) acquire(ctx context.Context, req *request, call *acquireCall) (*Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("distlock: acquire %q: %w", req.name, err)
	}
	t, err := c.queue.wait(ctx, c.stop, req.name)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		return nil, withCtx(fmt.Errorf("distlock: acquire %q: %w by another goroutine of this Client", req.name, ErrLocked), ctx.Err())
	}
	runHook(&testHookTurn, req.name)
	select {
	case <-c.stop: // Close freed the slot we were given
		if t.handoff != nil {
			t.handoff.discard()
		}
		t.done()
		return nil, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		// The turn came as ctx ended: pass it on, with the lease handed
		// over if there is one, to the next goroutine that still waits.
		t.giveUp()
		return nil, fmt.Errorf("distlock: acquire %q: %w", req.name, err)
	}
	if l, err := c.adopt(req, t, call); l != nil || err != nil {
		return l, err
	}
	var b backoff.BackOff // made on the first retry: most acquires need none
	var wake *waker
	var nw *nameWatch
	var kb backoff.BackOff // the head's retries while another holds a majority
	// One id for this Acquire's place in the lines; a fresh value for
	// every attempt (see try).
	waiter := newValue()
	var kept string // the value of the last attempt, if it kept its keys
	var last error  // the last attempt's error that ctx did not cut short
	var place int64 // our arrival time in the lines, once a master said
	join := true    // the last attempt reached a majority (or there was none)
	for {
		a := try{value: newValue(), replaces: t.replaces, waiter: waiter, place: place, join: join}
		if kept != "" {
			a.replaces = kept // our own keys, kept by the tie-break
		}
		l, out, err := c.attempt(ctx, req, a, t, call)
		t.replaces = "" // its keys are gone by now, or held by another
		if kept != "" {
			// Replaced where this attempt was granted; delete what is
			// left of them elsewhere.
			c.drop(req, kept)
			kept = ""
		}
		if err == nil {
			return l, nil
		}
		var k *keptError
		if errors.As(err, &k) {
			err = k.QuorumError
			kept = a.value
		}
		place = out.place
		if join && !out.reached {
			// Too few masters answered: out of every line until a
			// majority answers again, so that a waiter that cannot win
			// never stands first in line in the others' way. Its arrival
			// time is kept: it comes back to its place.
			c.leave(req, waiter, out.sent)
		}
		join = out.reached
		pttl := out.wait
		if ctx.Err() != nil && last != nil {
			// Cut short by ctx: the previous attempt says more (ErrLocked).
			err = last
		}
		last = err
		giveUp := func(err error) (*Lease, error) {
			// Leave the waiting list, and delete the keys this Acquire
			// kept; stragglers of the others are cleaned up already.
			c.leave(req, waiter, out.sent)
			if kept != "" {
				c.drop(req, kept)
			}
			t.done()
			return nil, err
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return giveUp(withCtx(err, ctx.Err()))
		}
		if b == nil {
			runHook(&testHookWatch, req.name)
			b = c.backoff()
			// Be woken by the lock's release or expiry (watch.go) rather
			// than by polling; the backoff is the backstop for lost events.
			wake = &waker{ch: make(chan struct{}, 1), value: waiter}
			nw, _ = c.watches.add(ctx, req, nil, wake)
			defer c.watches.remove(nw, nil, wake)
		}
		// Behind another waiter, sleep through releases: master 0 will
		// announce when this one is first.
		c.watches.setBehind(nw, wake, out.behind)
		delay := b.NextBackOff()
		if pttl > 0 && pttl < delay {
			delay = pttl
		}
		if k != nil {
			// The head of the line retries first: at once when the others
			// only had to delete their keys, and on a backoff from 1 ms when
			// a majority is held (a holder, or a newcomer about to yield).
			switch {
			case k.Held < c.quorum && k.Held > 0 && k.Granted+k.Held >= c.quorum:
				// A split vote: the rivals are deleting their keys.
				delay = keptRetryDelay
			case k.Held < c.quorum:
				// Too few masters answered: no reason to hurry.
				kb = nil
			default:
				if kb == nil {
					kb = c.backoff()
					kb.(*backoff.ExponentialBackOff).InitialInterval = keptRetryDelay
					kb.Reset()
				}
				delay = min(delay, kb.NextBackOff())
			}
		} else {
			kb = nil
		}
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-wake.ch:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return giveUp(withCtx(err, ctx.Err()))
		case <-c.stop:
			timer.Stop()
			return giveUp(ErrClosed)
		}
	}
}

// TryAcquire makes one attempt to take the lock name. It neither joins the
// waiting lists (see Acquire) nor passes anyone in them: a master grants
// it a free lock only when no waiter of an Acquire is in its line. It
// returns the lease,
// or an error wrapping ErrLocked when another lease holds the lock (another
// Client's, or one of this Client's that has not ended, or another
// goroutine of this Client is acquiring it right now), or a *QuorumError
// wrapping ErrNoQuorum when too few masters answered. It does not wait for
// the lock, but does wait for the masters' answers, each for at most the
// per-master timeout, and no longer than ctx. With ctx already ended it
// returns ctx's error at once.
func (c *Client) TryAcquire(ctx context.Context, name string, opts ...Option) (*Lease, error) {
	req, err := c.newRequest("try acquire", name, opts)
	if err != nil {
		return nil, err
	}
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.exit()
	ctx, call := c.startAcquire(ctx, modeTry, req)
	l, err := c.tryAcquire(ctx, req, &call)
	l, err = c.notAfter(ctx, req, l, err)
	c.endAcquire(ctx, &call, l, err)
	return l, err
}

// tryAcquire is TryAcquire once the request is checked.
func (c *Client) tryAcquire(ctx context.Context, req *request, call *acquireCall) (*Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("distlock: try acquire %q: %w", req.name, err)
	}
	t, ok := c.queue.try(req.name)
	if !ok {
		return nil, fmt.Errorf("distlock: try acquire %q: %w by another goroutine of this Client", req.name, ErrLocked)
	}
	if l, err := c.adopt(req, t, call); l != nil || err != nil {
		return l, err
	}
	l, _, err := c.attempt(ctx, req, try{value: newValue(), replaces: t.replaces}, t, call)
	if err != nil {
		t.done()
		return nil, withCtx(err, ctx.Err())
	}
	return l, nil
}

// backoff returns fresh backoff state for one Acquire: policies are values,
// state is per call.
func (c *Client) backoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.cfg.retryMinDelay
	b.MaxInterval = c.cfg.retryMaxDelay
	b.RandomizationFactor = 0.5
	b.Multiplier = 1.5
	b.MaxElapsedTime = 0 // ctx bounds the wait
	b.Reset()
	return b
}

// localQueue lets one goroutine per lock name at a time contend on the
// masters.
type localQueue struct {
	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	mu    sync.Mutex // guards slots and each slot's fields but ch
	slots map[string]*slot
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
	released string
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
	replaces string
}

// ref counts one more goroutine at name's slot, and returns the slot.
func (q *localQueue) ref(name string) *slot {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.slotLocked(name)
	s.refs++
	return s
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

// wait blocks until it is the caller's turn for name. It fails when ctx
// ends (with ctx's error) or stop closes (ErrClosed).
func (q *localQueue) wait(ctx context.Context, stop <-chan struct{}, name string) (*turn, error) {
	s := q.ref(name)
	// A free turn is taken even when ctx has just ended, as select would
	// choose at random: the caller must not report the name held by
	// another goroutine when it was not.
	select {
	case s.ch <- struct{}{}:
		return q.took(name, s), nil
	default:
	}
	select {
	case s.ch <- struct{}{}:
		return q.took(name, s), nil
	case <-ctx.Done():
		q.unref(name, s)
		return nil, ctx.Err()
	case <-stop:
		q.unref(name, s)
		return nil, ErrClosed
	}
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

// took makes the turn of the goroutine that has just taken s.
func (q *localQueue) took(name string, s *slot) *turn {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.tookLocked(name, s)
}

func (q *localQueue) tookLocked(name string, s *slot) *turn {
	t := &turn{q: q, name: name, s: s, replaces: s.released, handoff: s.handoff}
	s.released, s.handoff = "", nil
	return t
}

// waited reports whether other goroutines wait for the turn's name.
func (t *turn) waited() bool {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	return !t.passed && t.s.refs > 1
}

// done passes the turn on, once.
func (t *turn) done() { t.pass("") }

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
	t.pass(h.value)
}

// pass passes the turn on, once. released, when not empty, is the value of
// the lease that has just been released: the next goroutine's first
// attempt may replace keys that still hold it. Handing it over is always
// safe, however late the next goroutine comes: the lease has ended, and
// its keys are being deleted anyway.
func (t *turn) pass(released string) { t.give(released, nil) }

// handOff passes the turn on with next, the lease the next goroutine is to
// take over (handoff.go), and reports true; when no goroutine waits, it
// reports false and keeps the turn.
func (t *turn) handOff(next *Lease) bool { return t.give("", next) }

func (t *turn) give(released string, next *Lease) bool {
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
