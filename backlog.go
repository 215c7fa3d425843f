package distlock

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Renewals before new acquires.
//
// A Client sends everything to a master down one connection, in order
// (config.go), so the renewals of the leases it holds queue behind its new
// acquires. Asked for more leases than its masters can renew in time (a
// program taking 100,000 leases on a busy machine), a Client that kept
// taking would lose the leases it already holds: each lease taken would
// cost leases held. So while renewals are late on a majority of masters
// (some renewal batch there still unanswered lateAfter after it was
// sent), Acquire waits, within its context, before it sends an attempt,
// out of the waiting lists meanwhile (acquire.go, standAside); TryAcquire
// waits at most the per-master timeout, then fails without sending; and
// the reaper waits before it deletes the keys of lost leases (they expire
// by themselves). Releases, renewals, Extend, handoffs within the Client
// and the reads of loss events never wait: they keep leases or end them.
//
// A late renewal here is one the master has not answered, for whatever
// reason: its queue, a pause, a partition. So while a majority of masters
// do not answer the renewals of leases this Client holds, an Acquire
// waits for them (or its context) before it tries, until they are
// answered or given up on when their leases' validity runs out
// (TestAcquireWaitsForLateRenewals, TestWaiterStandsAsideWhileRenewalsLate;
// BenchmarkHold in benchmarks/).

// lateAfter is how long a renewal batch may go unanswered on a master
// before it counts as late there, for leases whose shortest TTL is ttl: a
// tenth of it, well inside the two thirds of a TTL that a renewal has
// before its lease's validity runs out; but never less than the
// per-master timeout, which a master far away may need.
func (c *Client) lateAfter(ttl time.Duration) time.Duration {
	return max(ttl/10, c.nodeTimeout(ttl))
}

// backlog counts, per master, the renewal batches unanswered past
// lateAfter, and holds new acquires back while a majority has one.
type backlog struct {
	c *Client

	// Lock order (docs/design.md, "Locks"): backlog.mu alone.
	mu    sync.Mutex
	late  [MaxNodes]int // per master: renewal batches unanswered past their limit
	nLate int           // masters with late[i] > 0
	since time.Time     // when acquires began to wait

	// gate is nil while acquires may go; else a channel closed when they
	// may go again.
	gate atomic.Pointer[chan struct{}]
}

// renewalSent is one master's share of a renewal batch, sent and not
// yet answered.
type renewalSent struct {
	b     *backlog
	node  int
	timer *time.Timer
	late  bool // counted in b.late (b.mu)
	done  bool // answered (b.mu)
}

// sent records that a renewal batch whose shortest TTL is ttl went out to
// master i; its answer must be reported with answered.
func (b *backlog) sent(i int, ttl time.Duration) *renewalSent {
	s := &renewalSent{b: b, node: i}
	s.timer = time.AfterFunc(b.c.lateAfter(ttl), s.overdue)
	return s
}

// overdue counts s as late, unless it was answered meanwhile.
func (s *renewalSent) overdue() {
	b := s.b
	b.mu.Lock()
	if s.done {
		b.mu.Unlock()
		return
	}
	s.late = true
	closed := false
	if b.late[s.node]++; b.late[s.node] == 1 {
		if b.nLate++; b.nLate == b.c.quorum {
			ch := make(chan struct{})
			b.gate.Store(&ch)
			b.since = time.Now()
			closed = true
		}
	}
	masters := ""
	if closed {
		masters = b.lateMastersLocked()
	}
	b.mu.Unlock()
	if closed { // logged outside b.mu: a slow handler holds no answer back
		b.c.tel.log.Warn("distlock: renewals are late on a majority of masters; new acquires wait until they are answered", "masters", masters)
	}
}

// answered records that s's master answered it (or that the wait for its
// answer ended).
func (s *renewalSent) answered() {
	s.timer.Stop()
	b := s.b
	b.mu.Lock()
	s.done = true
	opened := false
	if s.late {
		if b.late[s.node]--; b.late[s.node] == 0 {
			if b.nLate--; b.nLate == b.c.quorum-1 {
				if ch := b.gate.Swap(nil); ch != nil {
					close(*ch)
				}
				opened = true
			}
		}
	}
	waited := time.Since(b.since)
	b.mu.Unlock()
	if opened {
		b.c.tel.log.Info("distlock: renewals answered again; acquires go on", "waited", waited.Round(time.Millisecond).String())
	}
}

// lateMastersLocked names the masters with a late renewal. b.mu is held.
func (b *backlog) lateMastersLocked() string {
	var s string
	for i, n := range b.late[:len(b.c.nodes)] {
		if n > 0 {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%d (%s)", i, b.c.nodes[i].addr)
		}
	}
	return s
}

// closed reports whether acquires wait now.
func (b *backlog) closed() bool { return b.gate.Load() != nil }

// admit returns at once while renewals are on time; else it waits until
// they are, ctx ends or limit has passed (an error saying what it waited
// for, wrapping ctx's error or ErrNoQuorum), or the Client closes
// (ErrClosed). limit 0 means no limit but ctx.
func (b *backlog) admit(ctx context.Context, op, name string, limit time.Duration) error {
	ch := b.gate.Load()
	if ch == nil {
		return nil
	}
	var timeout <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	var why error
	select {
	case <-*ch:
		return nil
	case <-b.c.stop:
		return ErrClosed
	case <-ctx.Done():
		why = ctx.Err()
	case <-timeout:
		why = ErrNoQuorum
	}
	b.mu.Lock()
	masters := b.lateMastersLocked()
	b.mu.Unlock()
	if masters == "" {
		masters = "a majority"
	}
	return fmt.Errorf("distlock: %s %q: %w while renewals of this Client's leases were late on masters %s", op, name, why, masters)
}
