package distlock

import (
	"context"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/quorum"
	"github.com/distlock/distlock/internal/script"
)

// Local handoff: a lock passed between goroutines of one Client in one
// round trip.
//
// When Release ends a lease while another goroutine of the same Client
// waits for the name, it hands the keys over instead of deleting them:
// handoff.lua, sent to every master at once, replaces the lease's value
// with a fresh one for the next holder, with its TTL, and draws a fence
// counter (INCR), only where the key still holds the lease's value. When a
// majority did, and master 0 answered, the counters are fenced as an
// acquire's are (fencing.go), and the next goroutine takes the keys over as
// a new lease: its own value, the new token, validity counted from when the
// script was sent. One round trip, where a delete then an acquire would
// take two.
//
// Why it is safe. Exclusion: the key goes from one value of this Client to
// the next in one script, so no other Client can take the lock in between,
// and within the Client the turn goes to one goroutine at a time; the new
// lease's validity comes from a majority's answers to this round trip, as
// an acquire's does. The next holder's value is fresh, so a command of the
// old lease's still on its way (a renewal with a shorter TTL, delivered late
// over a replaced connection) cannot touch the new lease's keys
// (TestAdvHandoffAfterLateShortExtend). Tokens: the new counter comes from
// INCRs on a majority where the key still held the value at that moment,
// and is fenced on a majority before the lease is handed out. Every earlier
// lease's fenced majority meets the masters that drew it, so the new token
// is larger than every earlier lease's, on any Client, whatever the clocks
// did: when the keys vanished early (a clock jump, a flush) and another
// Client acquired meanwhile, its keys are not the value, the handoff fails
// there, and the lease is released as usual
// (TestHandoffAfterKeysVanishedEarly). No token is given twice: each comes
// from an INCR of its own.
//
// A handoff that fails may have given the key the next value on some
// masters: Release then deletes both values, and buries the next one where
// the answer never came (release.lua with a tombstone), so that a late handoff.lua is refused.
//
// Order between Clients: every master's waiting list holds the waiters of
// other Clients (acquire.go). When one of them is first in a master's
// line, or holds the key on master 0 (the tie-break's winner keeps it
// there), handoff.lua does nothing there and says so, and Release deletes
// the keys, so that the lock goes to that waiter; so too when master 0 does
// not answer. Each handoff reads the lines, so a waiter of another Client
// is never passed over once it is first in one that answers
// (TestWaiterCutFromMasterZeroIsServed).
//
// Watch sees the old lease released and the next acquired.

// handOff hands l's keys over to the next goroutine of this Client waiting
// for the name, and reports whether it did. ended reports whether it ended
// l (released); when it ended l but did not hand the keys over, the caller
// deletes them (with next, the value the failed handoff may have set on
// some masters) and passes the turn on, as after any Release.
func (l *Lease) handOff(ctx context.Context) (handed, ended bool, next string) {
	if !l.turn.waited() {
		return false, false, ""
	}
	l.mu.Lock()
	if l.checkLocked(l.c.now()) {
		l.mu.Unlock()
		return false, false, "" // ended already: lost, or released meanwhile
	}
	if e := l.c.events; e != nil {
		e.expect(l.req.key) // for the successor, until adopt tracks it
	}
	l.endLocked(ErrReleased)
	l.mu.Unlock()
	s, next := l.successor(context.WithoutCancel(ctx))
	if s == nil {
		if e := l.c.events; e != nil {
			e.unexpect(l.req.key)
		}
		return false, true, next
	}
	// Where the handoff's answer (or the old acquire's) never came, the
	// old value may remain, or arrive late; where a late answer said the
	// script did not swap (another waiter first in that master's line
	// meanwhile), it remains: bury it there once the handoff's answers
	// are in (a delete overtaking the handoff would leave that master
	// without the new lease's key). Elsewhere the script replaced the old
	// value (TestHandoffLeavesNoOldValue, TestLocalHandoffOtherTTL).
	c, req, old := l.c, l.req, l.value
	c.spawn(func() {
		s.settle()
		s.mu.Lock()
		unknown := s.unanswered
		for i, ack := range s.acks {
			if ack == 0 { // not swapped there
				unknown |= 1 << i
			}
		}
		s.mu.Unlock()
		l.mu.Lock()
		unknown |= l.unanswered // the old acquire may still arrive there
		l.mu.Unlock()
		only, some := masked(unknown, len(c.nodes))
		if !some {
			return
		}
		ctx, cancel := context.WithTimeout(c.bg, req.ttl)
		defer cancel()
		c.bury(ctx, req, old, only)
	})
	if !l.turn.handOff(s) {
		// Every waiter gave up meanwhile: delete the new lease's keys.
		s.discard()
		l.turn.done()
	}
	return true, true, ""
}

// successor runs the handoff's round trip for l, which has just ended, and
// returns the lease that takes l's keys over, or nil when a majority no
// longer holds them, master 0 says the lock should go to another Client's
// waiter, or master 0 did not answer. It returns the value it gave the next
// holder: on failure the caller deletes it too.
func (l *Lease) successor(ctx context.Context) (*Lease, string) {
	c := l.c
	ttl := l.TTL() // Extend may have changed it
	// The next holder's value carries its own metadata: the metadata the
	// goroutines waiting for the turn asked for (most of them, when they
	// differ; one that asked for other metadata takes the lock anew:
	// adopt). The owner is this Client's, as l's.
	r := *l.req
	r.ttl = ttl
	if r.metadata = l.turn.nextMetadata(r.metadata); r.metadata == "" {
		r.suffix = c.cfg.ownerSuffix
	} else {
		r.suffix = valueSuffix(c.cfg.owner, r.metadata)
	}
	req := &r
	next := req.newValue()
	start := time.Now()
	keys := []string{req.key, req.fenceKey, req.waitKey, req.lapseKey, req.tombKey(next)}
	ttlArg := c.ttlArg(ttl)
	args := []string{l.value, ttlArg, "0", l.waiter, next}
	args0 := []string{l.value, ttlArg, "1", l.waiter, next}
	// On a master still to answer the acquire, the handoff waits for that
	// answer (the acquire's goroutine may not have sent it yet), within
	// the acquire's per-master timeout; the others go at once, and the
	// handoff is decided at the fastest majority. Where a late answer
	// says the swap did not happen, the old value is buried (handOff).
	replies, count, sent := l.fanoutAfterAcquire(ctx, true, func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		a := args
		if node == 0 {
			a = args0
		}
		return c.execCounter(ctx, node, rc, script.Handoff, keys, a, "", swapped)
	})
	state := make([]int, len(c.nodes))
	counters := make([]int64, len(c.nodes))
	tally := quorum.NewTally(count)
	fail := func() (*Lease, string) {
		// Some masters may have the next value, or get it late: the
		// caller deletes it with the old one (Release, with its also);
		// here, where the answer never came, it is buried, once the
		// answers still to come are in. Not where an answer came: a bury
		// racing Release's delete there would make it find the key gone.
		left := tally.Pending()
		c.spawn(func() {
			for range left {
				if r := <-replies; r.err != nil && !notReplicated(r.err) {
					state[r.node] = failed
				}
			}
			if unknown, some := mark(state, func(s int) bool { return s == failed }); some {
				ctx, cancel := context.WithTimeout(c.bg, ttl)
				defer cancel()
				c.bury(ctx, req, next, unknown)
			}
		})
		return nil, next
	}
	// Master 0 is heard out: it says whether the lock should go to another
	// Client's waiter instead (as does every master that answers).
	h := handoffRound{state: state, counters: counters, tally: &tally, fenceKey: req.fenceKey}
	for !(tally.Won() && h.checked0 || tally.Lost()) {
		if h.record(<-replies) {
			return fail()
		}
	}
	if !tally.Won() || !h.checked0 {
		return fail()
	}
	validUntil := start.Add(ttl - c.drift(ttl))
	tok, err := c.fence(ctx, req, counters, validUntil)
	if err != nil || !time.Now().Before(validUntil) {
		return fail()
	}
	s := newLease(c, req, next, tok, start, nil)
	s.waiter = l.waiter
	s.handedSent = sent
	// The answers still to come may set the key late: the new lease's
	// deletes wait for them (settle), as after an acquire.
	s.answers(state, replies, tally.Pending(), swapped)
	return s, ""
}

// swapped reports whether res is handoff.lua's swap (which drew a counter).
func swapped(res rueidis.RedisResult) bool {
	v, err := res.AsIntSlice()
	return err == nil && len(v) == 2 && v[0] > 0
}

// handoffRound is what a handoff heard from the masters so far.
type handoffRound struct {
	state    []int
	counters []int64
	tally    *quorum.Tally
	fenceKey string
	checked0 bool // master 0 answered, and read its line
}

// record takes in one master's answer to handoff.lua, and reports whether
// the handoff must fail at once: master 0's line is unknown (no answer),
// or a master says another Client's waiter goes first.
func (h *handoffRound) record(r reply) (fail bool) {
	if r.err != nil {
		h.state[r.node] = failed
		if notReplicated(r.err) {
			// The script ran and answered; only its counter is not
			// on the replicas. No late command to bury there (a bury
			// would race the caller's delete of the next value, which
			// would then find the key gone: a loss that is not).
			h.state[r.node] = held
		}
		h.tally.Fail()
		return r.node == 0 // its line is unknown
	}
	v, err := r.res.AsIntSlice()
	if err != nil || len(v) != 2 {
		h.state[r.node] = failed
		h.tally.Fail()
		return false
	}
	h.state[r.node] = held
	if r.node == 0 {
		h.checked0 = true
	}
	switch {
	case v[1] == 1:
		h.tally.Refuse()
		return true // another Client's waiter goes first
	case v[0] != 0 && checkCounter(v[0], h.fenceKey) != nil:
		h.state[r.node] = failed // swapped, with a counter no token can carry
		h.tally.Fail()
	case v[0] > 0:
		h.state[r.node] = granted
		h.counters[r.node] = v[0]
		h.tally.Grant()
	default:
		h.tally.Refuse() // the key no longer holds the lease's value
	}
	return false
}

// adopt takes over the lease handed over with turn t, if any, for req, and
// starts it; it returns nil when there is none, or it does not suit req
// (another TTL, or other metadata: then its keys are deleted, and the caller's first attempt counts keys
// that still hold its value as free), and ErrClosed, having given up the
// turn, when Close has begun.
func (c *Client) adopt(req *request, t *turn, call *acquireCall) (*Lease, error) {
	l := t.handoff
	if l == nil {
		return nil, nil
	}
	t.handoff = nil
	l.mu.Lock()
	valid, due := l.validUntil.Load() > c.now(), l.dueLocked()
	l.mu.Unlock()
	if l.req.key != req.key || l.TTL() != req.ttl || l.req.metadata != req.metadata || !valid {
		t.replaces = l.replaced()
		l.discard()
		return nil, nil
	}
	l.req, l.turn = req, t
	if !c.track(l) {
		l.discard() // Close has begun
		t.done()
		return nil, ErrClosed
	}
	l.start(max(due, c.now()))
	call.handedOver = true
	return l, nil
}

// discard deletes the keys of a lease that was handed over but that no
// goroutine took over, on a goroutine that Close waits for. Not through the
// reaper (batch.go), whose deletes Close cuts short: discards are few, and
// many of them happen during Close. The caller is a call between enter and
// exit (or Close): the lease came with a turn it holds or gave up.
func (l *Lease) discard() {
	c := l.c
	if c.events != nil {
		c.events.unexpect(l.req.key)
	}
	c.spawn(func() {
		ctx, cancel := context.WithTimeout(c.bg, l.TTL())
		defer cancel()
		c.releaseAll(ctx, l.req.timeout, []*Lease{l}) // what is not confirmed expires with its TTL
	})
}
