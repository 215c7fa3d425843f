package distlock

import (
	"container/heap"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/distlock/distlock/internal/script"
)

// Background renewal.
//
// One renewer per Client keeps every held lease in a heap ordered by its
// next renewal. Its one goroutine sleeps until the earliest is due, takes
// every lease due within renewWindow, and renews them all with one pipeline
// per master (batch.go). Holding 100,000 leases costs 100,000 heap entries
// and timers, not 100,000 goroutines.
//
// A renewal sent at start that reaches a majority moves the lease's
// validity to start+TTL-drift, and the next renewal to start+TTL/3. One
// that a majority answers "gone" or "taken" loses the lease at once. One
// that is merely unanswered is tried again soon, until the validity timer
// (lease.go) ends the lease.

// renewWindow gathers leases due close together into one batch.
const renewWindow = 10 * time.Millisecond

// maxBatch bounds one pipeline.
const maxBatch = 10000

type renewer struct {
	c    *Client
	wake chan struct{} // a token here: the heap's head may have changed

	mu    sync.Mutex // guards queue and every queued lease's due and index
	queue leaseHeap
}

func newRenewer(c *Client) *renewer {
	return &renewer{c: c, wake: make(chan struct{}, 1)}
}

// add (re)schedules l's next renewal at due, unless l has ended.
func (r *renewer) add(l *Lease, due int64) {
	r.mu.Lock()
	// Checked under r.mu: end sets ctx's error before it calls remove, so
	// either we see it here or remove runs after this push.
	if l.ctx.Err() != nil {
		r.mu.Unlock()
		return
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

// renew renews leases on every master and settles each one's fate.
func (r *renewer) renew(leases []*Lease) {
	c := r.c
	// A lease whose Extend is in flight is skipped: Extend renews it.
	held := leases[:0]
	for _, l := range leases {
		if l.renewing.TryLock() {
			held = append(held, l)
		} else {
			r.add(l, c.now()+int64(renewWindow))
		}
	}
	leases = held
	if len(leases) == 0 {
		return
	}
	defer func() {
		for _, l := range leases {
			l.renewing.Unlock()
		}
	}()
	start := c.now()
	ttls := make([]time.Duration, len(leases))
	minTTL := time.Duration(0)
	for i, l := range leases {
		ttls[i] = l.TTL() // read once: the deadline must use the TTL sent
		if i == 0 || ttls[i] < minTTL {
			minTTL = ttls[i]
		}
	}
	// The per-master timeout, not the leases' remaining validity: one
	// slow master must not hold back the answer of the others until the
	// validity is gone.
	timeout := c.nodeTimeout(minTTL)
	ctx, span := c.tel.start(c.bg, spanRenew, "")
	replies, errs := c.batch(ctx, timeout, script.Renew, leases, func(i int, l *Lease) []string {
		return []string{l.value, strconv.FormatInt(ttls[i].Milliseconds(), 10)}
	})
	n := len(c.nodes)
	now := c.now()
	var counts [numRenewResults]int
	for j, l := range leases {
		ok, gone := c.tally(replies, j)
		ttl := ttls[j]
		switch {
		case ok >= c.quorum:
			counts[renewOK]++
			l.renewed(start, ttl, false)
			r.add(l, start+int64(ttl/3))
		case gone > n-c.quorum:
			counts[renewGone]++
			l.lose(fmt.Sprintf("renewal: %d of %d masters report its key gone or taken", gone, n))
		default:
			// Too few answers: try again soon, while validity lasts.
			counts[renewRetry]++
			r.add(l, now+int64(max(ttl/10, 5*time.Millisecond)))
		}
	}
	for result, k := range counts {
		c.renewals(result, k)
	}
	if span != nil {
		span.SetAttributes(
			attribute.Int("distlock.leases", len(leases)),
			attribute.Int("distlock.renew.renewed", counts[renewOK]),
			attribute.Int("distlock.renew.retried", counts[renewRetry]),
			attribute.Int("distlock.renew.lost", counts[renewGone]))
		c.recordMasterErrors(span, errs)
		span.End()
	}
}

// tally counts the masters' answers to renew.lua for lease j of a batch:
// ok renewed it, gone report its key gone or held by another value.
func (c *Client) tally(replies [][]int64, j int) (ok, gone int) {
	for i := range c.nodes {
		switch replies[i][j] {
		case 1:
			ok++
		case 0, -1:
			gone++
		}
	}
	return ok, gone
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
