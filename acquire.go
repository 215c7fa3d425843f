package distlock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/distlock/distlock/internal/quorum"
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
//
// A Client's renewals of the leases it holds come before its new
// acquires: while renewals are late on a majority of masters (a renewal
// unanswered a tenth of its TTL after it was sent, as when the masters
// cannot keep up with the leases held, or do not answer), Acquire waits
// before each attempt until they are answered or given up on (a renewal
// waits for a master until its leases' validity runs out), standing aside
// from the waiting lists meanwhile. A Client asked for more leases than
// its masters can renew in time then slows its acquires instead of losing
// the leases it holds.
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
// failed, before it watches name for wake-ups. testHookLearnt runs when a
// waiting Acquire wakes for a place a late answer gave it.
var testHookTurn, testHookWatch, testHookLearnt atomic.Pointer[func(name string)]

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
	t, err := c.queue.wait(ctx, c.stop, req.name, req.metadata)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		return nil, withCtx(&localLocked{op: "acquire", name: req.name}, ctx.Err())
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
	w := &waiting{c: c, req: req, t: t, waiter: newValue(""), join: true, late: latePlaces{wake: make(chan struct{}, 1)}}
	for first := true; ; first = false {
		if err := w.admit(ctx, first); err != nil {
			return w.stop(err, !first)
		}
		a := w.next()
		l, out, err := c.attempt(ctx, req, a, t, call)
		if err == nil {
			w.won()
			return l, nil
		}
		err = w.failed(ctx, a, out, err)
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return w.giveUp(withCtx(err, ctx.Err()))
		}
		if w.b == nil {
			runHook(&testHookWatch, req.name)
			w.b = c.backoff()
			// Be woken by the lock's release or expiry (watch.go) rather
			// than by polling; the backoff is the backstop for lost events.
			w.wake = &waker{ch: make(chan struct{}, 1), value: w.waiter}
			w.nw, _ = c.watches.add(ctx, req, nil, w.wake)
			defer c.watches.remove(w.nw, nil, w.wake)
		}
		// Behind another waiter, sleep through releases: master 0 will
		// announce when this one is first. After an attempt that masters
		// failed (down, or answering with an error such as a fence
		// counter out of range) and that others granted, its own
		// clean-up of those grants looks like a release, and the failures
		// are still there: only another hold's end wakes it
		// (TestWaitBacksOffAfterAnsweredFailures,
		// TestWaiterWokenByReleaseAfterMixedAttempt).
		own := ""
		if out.tally.Failed() > 0 && out.tally.Granted() > 0 {
			own = a.value
		}
		sleeps := c.watches.setBehind(w.nw, w.wake, out.behind, out.heard0, w.join, own)
		// Too many failed for any attempt to win until they mend: a wake
		// is no reason to try before the backoff.
		wake, learnt := w.wake.ch, w.late.wake
		if !out.tally.Reached() {
			wake, learnt = nil, nil
		}
		timer := time.NewTimer(w.delay(out, sleeps))
		select {
		case <-timer.C:
		case <-wake:
			timer.Stop()
		case <-learnt:
			runHook(&testHookLearnt, req.name)
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return w.giveUp(withCtx(err, ctx.Err()))
		case <-c.stop:
			timer.Stop()
			return w.giveUp(ErrClosed)
		}
	}
}

// waiting is the state of one waiting Acquire across its attempts.
type waiting struct {
	c   *Client
	req *request
	t   *turn

	// waiter is this Acquire's id in the waiting lists, the same for all
	// its attempts; each attempt has a fresh value (see try).
	waiter string
	place  int64 // its arrival time in the lines, once a master said
	late   latePlaces
	join   bool   // the last attempt reached a majority (or there was none)
	kept   string // the value of the last attempt, if it kept its keys
	last   error  // the last attempt's error that ctx did not cut short
	sent   <-chan struct{}

	b    backoff.BackOff // made on the first retry: most acquires need none
	kb   backoff.BackOff // the head's retries while another holds a majority
	wake *waker
	nw   *nameWatch
}

// latePlaces collects, for a waiting Acquire, the places in line that
// answers heard only after their attempt's verdict gave it (the attempt's
// clean-up reads them): its next attempt carries the earliest. One earlier
// than any its attempt heard in time means the lines may disagree on who
// is first (a master ranks it first at a place the others never heard);
// asleep behind another it would not tell them before its backoff, so it
// is woken to try again with it (TestWaiterWokenByPlaceFromLateAnswer).
// One that is not behind is woken by the release, and carries the place
// then (TestFirstAttemptNotWokenByLatePlace).
type latePlaces struct {
	earliest atomic.Int64  // 0: none
	carried  atomic.Int64  // the place the latest attempt carries (0: none)
	wake     chan struct{} // the waiter asleep behind learnt an earlier place
}

// carry returns the place the next attempt carries: place, or the
// earliest learnt late when that is earlier. A wake for a place learnt
// before it is spent: the attempt carries that place already.
func (p *latePlaces) carry(place int64) int64 {
	if l := p.earliest.Load(); l > 0 && (place == 0 || l < place) {
		place = l
	}
	p.carried.Store(place)
	select {
	case <-p.wake:
	default:
	}
	return place
}

// take records place, read late from the answer of an attempt that heard
// heard in time (0: none) and that master 0 put behind another or not.
func (p *latePlaces) take(place, heard int64, behind bool) {
	if heard != 0 && place >= heard {
		return
	}
	for {
		cur := p.earliest.Load()
		if cur != 0 && cur <= place {
			return
		}
		if p.earliest.CompareAndSwap(cur, place) {
			break
		}
	}
	if c := p.carried.Load(); behind && (c == 0 || place < c) {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// heardLate is what an attempt's clean-up needs to hand its late answers'
// places to the waiter: where they go (nil for TryAcquire), the earliest
// place the attempt heard in time, and whether master 0 put it behind.
type heardLate struct {
	to     *latePlaces
	heard  int64
	behind bool
}

// next returns the next attempt to make.
func (w *waiting) next() try {
	a := try{value: w.req.newValue(), replaces: w.t.replaces, waiter: w.waiter, place: w.late.carry(w.place), join: w.join, late: &w.late}
	if w.kept != "" {
		a.replaces = replaced{value: w.kept} // our own keys, kept by the tie-break
	}
	return a
}

// won clears up after the attempt that won: the keys an earlier attempt
// kept were replaced where it was granted; delete what is left elsewhere.
func (w *waiting) won() {
	if w.kept != "" {
		w.c.drop(w.req, w.kept)
		w.kept = ""
	}
}

// failed takes in attempt a's failure, and returns the error to report
// should the Acquire end now.
func (w *waiting) failed(ctx context.Context, a try, out verdict, err error) error {
	w.t.replaces = replaced{} // its keys are gone by now, or held by another
	w.won()
	if out.kept {
		w.kept = a.value
	}
	w.place, w.sent = out.place, out.sent
	if w.join && !out.tally.Reached() {
		// Too few masters answered: out of every line until a majority
		// answers again, so that a waiter that cannot win never stands
		// first in line in the others' way. Its arrival time is kept: it
		// comes back to its place.
		w.c.leave(w.req, w.waiter, out.sent, false)
	}
	w.join = out.tally.Reached()
	if ctx.Err() != nil && w.last != nil {
		// Cut short by ctx: the previous attempt says more (ErrLocked).
		err = w.last
	}
	w.last = err
	return err
}

// admit waits before an attempt while the Client's renewals are late
// (backlog.go): renewals of the leases held come first. After the first
// attempt it stands aside meanwhile. It returns the error that ends the
// Acquire, with the last attempt's (ErrLocked, say) when there was one.
func (w *waiting) admit(ctx context.Context, first bool) error {
	c := w.c
	if !first && c.backlog.closed() {
		w.standAside()
	}
	err := c.backlog.admit(ctx, "acquire", w.req.name, 0)
	if err != nil && w.last != nil && !errors.Is(err, ErrClosed) {
		err = errors.Join(w.last, err)
	}
	return err
}

// stop ends the Acquire with err: like giveUp once an attempt was sent;
// before that there is nothing to leave, only the turn to pass on.
func (w *waiting) stop(err error, sent bool) (*Lease, error) {
	if !sent {
		w.t.giveUp()
		return nil, err
	}
	return w.giveUp(err)
}

// standAside takes the waiter out of every line while it cannot send (its
// Client's renewals are late, backlog.go), as when too few masters answer:
// a waiter that sends nothing must not stand first in line in the others'
// way, nor keep master 0's keys for the tie-break. Its arrival time is
// kept: its next attempt comes back to its place.
func (w *waiting) standAside() {
	w.c.leave(w.req, w.waiter, w.sent, false)
	w.won() // deletes the keys it kept
	w.join = true
}

// giveUp ends the Acquire: it leaves the waiting lists, deletes the keys
// it kept (stragglers of the others are cleaned up already) and passes
// the turn on.
func (w *waiting) giveUp(err error) (*Lease, error) {
	w.c.leave(w.req, w.waiter, w.sent, true)
	if w.kept != "" {
		w.c.drop(w.req, w.kept)
	}
	w.t.done()
	return nil, err
}

// delay returns how long to sleep before the next attempt, at most: the
// backoff, or sooner the holder's remaining PTTL (or a dead first in
// line's lapse); and for the head of the line, which kept master 0's keys,
// what headRetry says. A waiter behind another sleeps between half and
// all of RetryMaxDelay instead of the backoff: master 0 wakes it when it
// is first, so its timer only renews its place in line (which lapses
// after max(1 s, 4*RetryMaxDelay)) and stands in for an announcement
// lost. Retrying sooner only cost every master an attempt per waiter
// behind, while none of them could win: with 8 waiters in 8 processes,
// about 6 attempts per handoff instead of 2.
func (w *waiting) delay(out verdict, sleeps bool) time.Duration {
	delay := w.b.NextBackOff()
	if sleeps {
		delay = w.c.cfg.retryMaxDelay/2 + rand.N(w.c.cfg.retryMaxDelay/2+1)
	}
	if out.wait > 0 && out.wait < delay {
		delay = out.wait
	}
	if !out.kept {
		w.kb = nil
		return delay
	}
	switch headRetry(out.tally) {
	case retrySoon:
		return keptRetryDelay
	case retryBackoff:
		if w.kb == nil {
			w.kb = w.c.backoff()
			w.kb.(*backoff.ExponentialBackOff).InitialInterval = keptRetryDelay
			w.kb.Reset()
		}
		return min(delay, w.kb.NextBackOff())
	default:
		w.kb = nil
		return delay
	}
}

// How the head of the line, which won master 0 and kept its keys, retries.
const (
	retryAsOthers = iota // too few masters answered: no reason to hurry
	retrySoon            // a split vote: the rivals are deleting their keys
	retryBackoff         // a majority is held: on a backoff from 1 ms
)

// headRetry says how the head of the line retries after an attempt whose
// answers were t: at once when the others only had to delete their keys,
// on a backoff from 1 ms when another holds a majority (a holder, or a
// rival whose win is in flight), and as any waiter when too few answered.
func headRetry(t quorum.Tally) int {
	switch {
	case t.Refused() < t.Needed() && t.Refused() > 0 && t.Granted()+t.Refused() >= t.Needed():
		return retrySoon
	case t.Refused() < t.Needed():
		return retryAsOthers
	default:
		return retryBackoff
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
// per-master timeout, and no longer than ctx. While this Client's
// renewals are late on a majority of masters (see Acquire), it first waits
// for them, as long again at most, and sends nothing if they stay late:
// its error then wraps ErrNoQuorum (or ctx's error) and says so. With ctx
// already ended it returns ctx's error at once.
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
		return nil, &localLocked{op: "try acquire", name: req.name}
	}
	if l, err := c.adopt(req, t, call); l != nil || err != nil {
		return l, err
	}
	if err := c.backlog.admit(ctx, "try acquire", req.name, req.timeout); err != nil {
		t.giveUp()
		return nil, err
	}
	l, _, err := c.attempt(ctx, req, try{value: req.newValue(), replaces: t.replaces}, t, call)
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
