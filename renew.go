package distlock

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Background renewal.
//
// One renewer per Client keeps every held lease in a heap ordered by its
// next renewal. Its one goroutine sleeps until the earliest is due, takes
// every lease due within renewWindow, and renews them in batches of up to
// maxBatch leases, a batch being one pipeline per master (one goroutine
// per master and batch, never one per lease). Holding 100,000 leases costs
// 100,000 heap entries and timers, not 100,000 goroutines.
//
// A lease keeps, per master, what that master's last answer guarantees,
// its "ack": a renewal sent at start with ttl and answered "renewed" keeps
// the key there until start+TTL at least, start+TTL-drift on this
// process's clock. The lease is valid until the majority-th latest ack: a
// majority of masters keep its key at least that long. So each answer is
// settled on its own, as soon as it arrives: on three masters, a renewal
// answered by two moves the lease's validity to start+TTL-drift and its
// next renewal to start+TTL/3 at the second answer, however long the third
// master takes (a paused master holds nothing back). A majority answering
// that the key is gone or taken loses the lease at once.
//
// A batch waits for a master as long as an answer can be of use: until
// the latest validity among its leases, less the drift margin, and at
// least one per-master timeout (Client.nodeTimeout). A master that is
// merely slow, busy or with acquires and other batches queued ahead on its
// connection, is waited for, not given up on after a fixed short timeout.
// And while a lease's renewal to a master is unanswered, no other renewal
// of that lease is sent to that master: it would only queue behind the
// first on the same connection, adding load to a master already behind.
// (A renewal that timed out may still sit in the connection's pipe; what
// is sent later runs after it, so each answer still tells the key's
// expiry at that point.)
//
// A lease whose renewal is overdue (its validity has not moved a third of
// a TTL after the renewal it counts from) is retried on the masters that
// can still help: those with no renewal of it unanswered, whose key is not
// gone, and whose ack does not already reach beyond the validity. It is
// retried a tenth of a TTL later when the renewals still unanswered can no
// longer make a majority (a master failed), else only once a third of the
// TTL is all that is left of its validity: slow masters are given their
// time before more work is sent. While every master that could help is
// still to answer, the lease waits for those answers; if none comes in
// time, the validity timer (lease.go) ends the lease.
//
// Extend (extend.go) sends through the same path and is settled by the
// same acks; while it runs, background renewals of its lease wait for it.
// The acks, and how each answer settles a lease, are in lease_renewal.go.

// renewWindow gathers leases due close together into one batch.
const renewWindow = 10 * time.Millisecond

// maxBatch bounds one batch: the leases of one pipeline per master.
// Smaller batches do not interleave better with other commands: with one
// connection per master, batches due together queue back to back on it
// whatever their size, and more of them cost more goroutines and pipeline
// slots. Measured holding 100,000 leases (3 runs each, a probe taking and
// releasing other locks beside them): no lease lost with 10,000 or 1,000,
// and the probe's acquire took 5-8 ms at the median with 10,000 against
// 17-66 ms with 1,000.
const maxBatch = 10000

type renewer struct {
	c    *Client
	wake chan struct{} // a token here: the heap's head may have changed

	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu, keyEvents.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	mu    sync.Mutex // guards queue and every queued lease's due and index
	queue leaseHeap
}

func newRenewer(c *Client) *renewer {
	return &renewer{c: c, wake: make(chan struct{}, 1)}
}

// add (re)schedules l's next renewal at due, unless l has ended.
func (r *renewer) add(l *Lease, due int64) {
	r.schedule(l, due, false)
}

// retry schedules l's next renewal at due, unless l has ended or is
// already due sooner. It reports whether it scheduled l.
func (r *renewer) retry(l *Lease, due int64) bool {
	return r.schedule(l, due, true)
}

func (r *renewer) schedule(l *Lease, due int64, onlySooner bool) bool {
	r.mu.Lock()
	// Checked under r.mu: end sets ctx's error before it calls remove, so
	// either we see it here or remove runs after this push.
	if l.ctx.Err() != nil || (onlySooner && l.index >= 0 && l.due <= due) {
		r.mu.Unlock()
		return false
	}
	l.due = due
	if l.index >= 0 {
		heap.Fix(&r.queue, l.index)
	} else {
		heap.Push(&r.queue, l)
	}
	head := l.index == 0
	r.mu.Unlock()
	if head {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// remove unschedules l; the lease has ended.
func (r *renewer) remove(l *Lease) {
	r.mu.Lock()
	if l.index >= 0 {
		heap.Remove(&r.queue, l.index)
	}
	r.mu.Unlock()
}

// run is the renewer's goroutine; it returns when the Client closes.
func (r *renewer) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		wait := time.Hour
		if len(r.queue) > 0 {
			wait = time.Duration(r.queue[0].due - r.c.now())
		}
		r.mu.Unlock()
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-r.c.stop:
				return
			case <-r.wake:
				continue
			case <-timer.C:
			}
		}
		for {
			due := r.takeDue(r.c.now() + int64(renewWindow))
			if len(due) == 0 {
				break
			}
			r.c.spawn(func() { r.renew(due) })
		}
	}
}

// takeDue pops up to maxBatch leases due by limit, skipping ended ones.
func (r *renewer) takeDue(limit int64) []*Lease {
	r.mu.Lock()
	defer r.mu.Unlock()
	var due []*Lease
	for len(r.queue) > 0 && r.queue[0].due <= limit && len(due) < maxBatch {
		l := heap.Pop(&r.queue).(*Lease)
		if l.ctx.Err() == nil {
			due = append(due, l)
		}
	}
	return due
}

// share is one master's part of a renewal batch: the leases sent to it,
// by their index in the batch.
type share struct {
	idx    []int
	until  int64         // the latest validity among the leases
	minTTL time.Duration // the shortest TTL among them
}

func (s *share) add(j int, ttl time.Duration, until int64) {
	if len(s.idx) == 0 || ttl < s.minTTL {
		s.minTTL = ttl
	}
	s.idx = append(s.idx, j)
	s.until = max(s.until, until)
}

// renewBatch follows one batch until every master's share is answered.
type renewBatch struct {
	start   int64
	leases  []*Lease
	ttls    []time.Duration // per lease: the TTL sent
	args    [][]string      // per lease: renew.lua's arguments, for that TTL
	outcome []atomic.Int32  // per lease: 1+renewOK or 1+renewGone once settled by this batch
	errs    []error         // per master
	left    atomic.Int32    // shares still unanswered
	span    trace.Span
}

// renew sends one batch of due leases to the masters, each lease to the
// masters that can help (Lease.claim), and settles every answer as it
// arrives.
func (r *renewer) renew(leases []*Lease) {
	c := r.c
	start := c.now()
	b := &renewBatch{start: start, leases: leases, ttls: make([]time.Duration, len(leases)), args: make([][]string, len(leases)), outcome: make([]atomic.Int32, len(leases)), errs: make([]error, len(c.nodes))}
	shares := make([]share, len(c.nodes))
	for i := range shares {
		shares[i].idx = make([]int, 0, len(leases))
	}
	for j, l := range leases {
		mask, ttl, args, until := l.claim(start)
		b.ttls[j], b.args[j] = ttl, args
		for i := range shares {
			if mask&(1<<i) != 0 {
				shares[i].add(j, ttl, until)
			}
		}
	}
	for i := range shares {
		if len(shares[i].idx) > 0 {
			b.left.Add(1)
		}
	}
	if b.left.Load() == 0 {
		return // every lease waits for answers still to come
	}
	// Renewals end with the Client: Close releases the leases.
	ctx, span := c.tel.start(c.stopping, spanRenew, "")
	b.span = span
	for i := range shares {
		if sh := &shares[i]; len(sh.idx) > 0 {
			c.spawn(func() { r.send(ctx, b, i, sh) })
		}
	}
}

// send renews master i's share of batch b and settles each answer.
func (r *renewer) send(ctx context.Context, b *renewBatch, i int, sh *share) {
	c := r.c
	keys, args := make([]string, len(sh.idx)), make([][]string, len(sh.idx))
	for k, j := range sh.idx {
		keys[k], args[k] = b.leases[j].req.key, b.args[j]
	}
	if c.events != nil {
		c.events.renewing(i, b.leases, sh.idx)
	}
	late := c.backlog.sent(i, sh.minTTL)
	ints, err := c.renewPipeline(ctx, c.renewWait(sh.until, sh.minTTL), i, keys, args)
	late.answered()
	if c.events != nil {
		// Before the answers settle the leases: once answered clears a
		// lease's renewal in flight, another may be sent, and its
		// renewing must not come before this judgement
		// (TestAdv17OverlappingRenewalsSwallowDelete).
		c.events.renewedOn(i, b.leases, sh.idx, ints)
	}
	for k, j := range sh.idx {
		switch b.leases[j].answered(i, b.start, b.ttls[j], ints[k], err) {
		case renewOK:
			b.outcome[j].CompareAndSwap(0, 1+renewOK)
		case renewGone:
			b.outcome[j].Store(1 + renewGone)
		}
	}
	b.errs[i] = err
	if b.left.Add(-1) == 0 {
		b.finish(c)
	}
}

// finish counts a batch's outcomes, once every master's share is
// answered: each lease sent is renewed, lost, or neither (a renewal
// without a majority, retried while validity lasts, unless the lease was
// released meanwhile); and ends its span.
func (b *renewBatch) finish(c *Client) {
	var counts [numRenewResults]int
	for j, l := range b.leases {
		if o := b.outcome[j].Load(); o != 0 {
			counts[o-1]++
		} else if err := l.Err(); b.args[j] != nil && (err == nil || isLost(err)) {
			counts[renewRetry]++
		}
	}
	for result, n := range counts {
		c.renewals(result, n)
	}
	if b.span != nil {
		b.span.SetAttributes(
			attribute.Int("distlock.leases", len(b.leases)),
			attribute.Int("distlock.renew.renewed", counts[renewOK]),
			attribute.Int("distlock.renew.retried", counts[renewRetry]),
			attribute.Int("distlock.renew.lost", counts[renewGone]))
		c.recordMasterErrors(b.span, b.errs)
		b.span.End()
	}
}

// renewWait is how long a renewal waits for one master's answers when the
// latest validity among its leases is until: as long as an answer can be
// of use, which is until that validity less the drift margin (a master
// that has not answered by then is reported, and the renewal counted as
// failed, before the lease is lost), but at least one per-master timeout.
func (c *Client) renewWait(until int64, ttl time.Duration) time.Duration {
	return max(time.Duration(until-c.now())-c.drift(ttl), c.nodeTimeout(ttl))
}

// leaseHeap orders leases by due; container/heap drives it.
type leaseHeap []*Lease

func (h leaseHeap) Len() int           { return len(h) }
func (h leaseHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *leaseHeap) Push(x any) {
	l := x.(*Lease)
	l.index = len(*h)
	*h = append(*h, l)
}
func (h *leaseHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	l.index = -1
	*h = old[:len(old)-1]
	return l
}
