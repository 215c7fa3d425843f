package distlock

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/script"
)

// Local handoff: a lock passed between goroutines of one Client with no
// round trip at all.
//
// When a goroutine of a Client waits for a name that a lease of the same
// Client holds, the lease draws fencing counters for its successors at
// once, while it still holds the lock: draw.lua raises the fence counter by
// handoffBlock on every master whose key holds the lease's value, and the
// counters are settled as for an acquire (fencing.go: written back when
// they disagree). Release then hands the lease's keys over with the turn
// (turn.handOff): nothing is deleted or sent; the next goroutine's lease
// keeps the keys, their value and their validity as the last renewal left
// them, with the next counter of the block as its token. A delete then an
// acquire would cost two round trips (one when pipelined), and a holder
// that works 1 ms per lock would spend much of its time there. A block
// serves several handoffs, so most of them send nothing at all: a round
// trip during a hold is cheap, but not free (the replies wake the Go
// runtime's poller, which then sleeps again at millisecond precision,
// and a 1 ms time.Sleep in the holder takes longer).
//
// Why it is safe. Exclusion: the keys hold this Client's value throughout,
// so no other Client can take the lock in between, and within the Client
// the turn goes to one goroutine at a time. The tokens: a draw raised the
// counter on a majority while a lease of the chain held a majority, so
// every counter of its block is larger than the tokens of the leases before
// (the draw's majority meets the one that fenced them), and smaller than
// any later lease's of any Client (whose majority meets the draw's). Within
// the block, tokens rise by one per handoff; no other lease can draw a
// counter of the block on the master it came from, so no two leases share
// a token. A token drawn early is a lease acquired early and used late; and
// the successor's validity counts from the renewal that last reached a
// majority, not from the handoff, as for any lease.
//
// Order between Clients: master 0's waiting list holds the waiters of other
// Clients (retry.go). When one of them is first in line, or holds the key
// on master 0 (the tie-break's winner keeps it there), draw.lua draws
// nothing, and Release deletes the keys as usual, so that the lock goes to
// that waiter; so too when master 0 did not answer the draw (down, or slow
// past the per-master timeout): its line is unknown. A block is used only
// within handoffWindow of its draw, or by the lease it was drawn for; and a
// lease that takes a block over older than half the window draws the next.
// So a waiter of another Client that joins the line after a draw waits for
// at most handoffWindow, or one more holder of the Client, longer than
// arrival order alone would make it.
//
// A lease is handed over only while a majority of masters has set its keys
// within the last third of a TTL (its renewal is not overdue): a handoff
// asks no master, so it relies on that recent majority instead. When most
// masters went down, renewals stop reaching a majority, and within a third
// of a TTL Release deletes as usual and the next goroutine must win a
// majority of its own. The successor takes the lease over only when it asks
// for the TTL the lease has; otherwise, or when the lease is no longer
// recently confirmed by then, or when no goroutine is left to take it, the
// keys are deleted as after a Release (discard), and the next goroutine
// acquires anew.
//
// Watch sees no change: the keys keep their value.

const (
	// handoffBlock is how many counters a draw takes: tokens for up to
	// that many local handoffs.
	handoffBlock = 16
	// handoffWindow is how long a block serves handoffs after its draw,
	// beyond the lease it was drawn for: the longest a waiter of another
	// Client may wait beyond arrival order (Acquire's doc says 20 ms).
	handoffWindow = 20 * time.Millisecond
)

// drawing is a draw of a block of counters for the successors of a chain of
// leases of one value. Its fields but next are set before done is closed;
// next is the holding lease's, under its mu.
type drawing struct {
	done   chan struct{} // closed when the draw has ended
	at     int64         // when it was sent, on c's monotonic clock
	ok     bool          // a majority drew: the block is next..top, from master node
	behind bool          // master 0 said a waiter of another Client is first in line
	top    int64
	node   int
	next   int64
}

// drawNext starts a draw for l's successors, unless l has ended, a draw is
// in flight, a waiter of another Client was seen first in line, or the
// block at hand is new enough and not nearly used up. It returns at once.
func (l *Lease) drawNext() {
	c := l.c
	l.mu.Lock()
	if l.err != nil || !l.needDrawLocked(c.now()) {
		l.mu.Unlock()
		return
	}
	d := &drawing{done: make(chan struct{}), at: c.now()}
	l.draw = d
	l.mu.Unlock()
	if !c.trySpawn(func() { l.drawBlock(d) }) {
		close(d.done)
	}
}

// needDrawLocked reports whether l should draw a new block. l.mu is held.
func (l *Lease) needDrawLocked(now int64) bool {
	d := l.draw
	if d == nil {
		return true
	}
	if !l.collectLocked() {
		return false // in flight
	}
	if d.behind {
		return false // the chain ends with this lease
	}
	b := l.block
	return b == nil || b.top-b.next < 2 || now-b.at > int64(handoffWindow/2)
}

// collectLocked collects l's latest draw if it has ended: its block, if it
// drew one, becomes the block at hand. It reports whether the draw has
// ended. l.mu is held.
func (l *Lease) collectLocked() bool {
	select {
	case <-l.draw.done:
		if l.draw.ok {
			l.block = l.draw
		}
		return true
	default:
		return false
	}
}

// drawBlock draws a block of handoffBlock counters on every master
// (draw.lua) and fences its top (fencing.go). It runs on when l ends: its
// block serves l's successors. Only Close stops it early.
func (l *Lease) drawBlock(d *drawing) {
	defer close(d.done)
	l.settle() // the acquire's stragglers may still set the key
	c, req := l.c, l.req
	ctx := c.stopping
	keys := []string{req.key, req.fenceKey, req.waitKey, req.lapseKey}
	n := strconv.Itoa(handoffBlock)
	args, args0 := []string{l.value, "0", n}, []string{l.value, "1", n}
	replies, count := c.fanout(ctx, req.timeout, nil, func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		if node == 0 {
			return script.Draw.Exec(ctx, rc, keys, args0)
		}
		return script.Draw.Exec(ctx, rc, keys, args)
	})
	counters := make([]int64, len(c.nodes))
	drawn := 0
	answered0, checked0 := false, false // master 0 answered; and read its line
	for answered := 0; answered < count; answered++ {
		// Master 0 is heard out: it says whether the lock should go to
		// another Client's waiter instead.
		if drawn >= c.quorum && answered0 || drawn+count-answered < c.quorum {
			break
		}
		r := <-replies
		if r.node == 0 {
			answered0 = true
		}
		if r.err != nil {
			continue
		}
		v, err := r.res.AsIntSlice()
		if err != nil || len(v) != 2 {
			continue
		}
		if r.node == 0 {
			checked0 = true
		}
		if v[1] == 1 {
			d.behind = true
			return
		}
		if v[0] > 0 {
			counters[r.node] = v[0]
			drawn++
		}
	}
	if drawn < c.quorum || !checked0 {
		// Without master 0's line, another Client's waiter could be
		// passed over: no block, and Release deletes as usual.
		return
	}
	tok, err := c.fence(ctx, req, counters, l.Deadline())
	if err != nil {
		return
	}
	d.top, d.node = int64(tok>>nodeBits), int(tok&(1<<nodeBits-1))
	d.next = d.top - handoffBlock + 1
	d.ok = true
}

// blockLocked returns the block to take l's successor's token from, or,
// when there is none yet, the draw to wait for (nil: none to wait for, no
// handoff). l.mu is held.
func (l *Lease) blockLocked(now int64) (*drawing, <-chan struct{}) {
	d := l.draw
	inFlight := d != nil && !l.collectLocked()
	if d != nil && !inFlight && d.behind {
		return nil, nil // the lock goes to another Client's waiter
	}
	if b := l.block; b != nil && l.usableLocked(b, now) {
		return b, nil
	}
	if inFlight {
		return nil, d.done
	}
	return nil, nil
}

// usableLocked reports whether block b may give l's successor its token:
// b has a counter left, and was drawn for l or within handoffWindow.
func (l *Lease) usableLocked(b *drawing, now int64) bool {
	return b.next <= b.top && (b.at >= l.since || now-b.at < int64(handoffWindow))
}

// confirmedLocked reports whether a majority of masters set l's keys
// within the last third of its TTL (by its acquire, or by the renewal its
// validity counts from), so that its renewal is not overdue, and l is
// still valid: only such a lease is handed over. A handoff asks no master,
// and a successor must not be told it acquired a lock that no majority has
// vouched for lately, as when most masters went down since; it gets at
// least two thirds of a TTL of validity, less the drift margin. l.mu is
// held.
func (l *Lease) confirmedLocked(now int64) bool {
	return now <= l.dueLocked() && now < l.validUntil.Load()
}

// successorLocked returns the lease that takes over l's keys with token:
// the same value, TTL, validity, per-master renewal state and draws. l.mu
// is held, and l has no renewal unanswered.
func (l *Lease) successorLocked(token uint64) *Lease {
	req := *l.req
	req.ttl = l.TTL() // Extend may have changed it
	// Its validity, renewal state and draws are l's, not a new acquire's.
	s := newLease(l.c, &req, l.value, token, time.Now(), nil)
	s.validUntil.Store(l.validUntil.Load())
	copy(s.acks, l.acks)
	s.gone, s.draw, s.block = l.gone, l.draw, l.block
	return s
}

// handOff hands l's keys over to the next goroutine of this Client waiting
// for the name, with the next token of a block drawn for it (waiting for a
// draw in flight, until ctx ends), and reports whether it did. ended
// reports whether it ended l, released: also when the waiters gave up
// meanwhile, and then the caller deletes the keys.
func (l *Lease) handOff(ctx context.Context) (handed, ended bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *drawing
	for {
		now := l.c.now()
		if l.checkLocked(now) || l.inflight != 0 || l.extending || !l.confirmedLocked(now) {
			// Ended; or a renewal is unanswered: its answer would be the
			// successor's to count; or no majority renewed the keys in
			// the last third of a TTL. Release as usual.
			return false, false
		}
		var wait <-chan struct{}
		if b, wait = l.blockLocked(l.c.now()); b != nil {
			break
		}
		if wait == nil {
			return false, false
		}
		l.mu.Unlock()
		select {
		case <-wait:
			l.mu.Lock()
		case <-ctx.Done():
			l.mu.Lock()
			return false, false
		}
	}
	next := l.successorLocked(token(b.next, b.node))
	b.next++
	// Under l.mu: no renewal starts between the copy of l's state and
	// l's end, and l ends before its successor can start.
	l.endLocked(ErrReleased)
	return l.turn.handOff(next), true
}

// adopt takes over the lease handed over with turn t, if any, for req, and
// starts it; it returns nil when there is none, or it does not suit req
// (then its keys are deleted, and the caller's first attempt counts keys
// that still hold its value as free), and ErrClosed, having given up the
// turn, when Close has begun.
func (c *Client) adopt(req *request, t *turn, call *acquireCall) (*Lease, error) {
	l := t.handoff
	if l == nil {
		return nil, nil
	}
	t.handoff = nil
	// Taken over only before its renewal is due (confirmedLocked), which
	// stays due when it was: a chain of short holds never pushes it back.
	l.mu.Lock()
	confirmed, due := l.confirmedLocked(c.now()), l.dueLocked()
	l.mu.Unlock()
	if l.req.key != req.key || l.TTL() != req.ttl || !confirmed {
		t.replaces = l.value
		l.discard()
		return nil, nil
	}
	l.req, l.turn, l.since = req, t, c.now()
	if !c.track(l) {
		l.discard() // Close has begun
		t.done()
		return nil, ErrClosed
	}
	l.start(max(due, c.now()))
	call.handedOver = true
	if t.hold(l) {
		l.drawNext()
	}
	return l, nil
}

// discard deletes the keys of a lease that was handed over but that no
// goroutine took over, on a goroutine that Close waits for. Not through the
// reaper (batch.go), whose deletes Close cuts short: discards are few, and
// many of them happen during Close. The caller is a call between enter and
// exit (or Close): the lease came with a turn it holds or gave up.
func (l *Lease) discard() {
	c := l.c
	c.spawn(func() {
		ctx, cancel := context.WithTimeout(c.bg, l.TTL())
		defer cancel()
		c.releaseAll(ctx, l.req.timeout, []*Lease{l}) // what is not confirmed expires with its TTL
	})
}
