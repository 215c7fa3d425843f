package distlock

import (
	"context"
	"fmt"
	"math/bits"
	"time"

	"github.com/distlock/distlock/internal/quorum"
	"go.opentelemetry.io/otel/attribute"
)

// Extend renews the lease now on every master, with a new TTL that later
// renewals keep once Extend has succeeded (after a failed Extend they go
// on with the TTL the lease had). It returns nil when a majority renewed; then the lease is
// valid for ttl (less drift) from when Extend sent its commands. A shorter
// ttl shortens the validity the moment Extend is called, whether or not it
// succeeds: from then on no master's answer given under the longer TTL
// counts beyond it, not even the answer of a renewal already in flight
// (TestExtendShorterWithRenewalInFlight). Extend waits for a majority as long as the lease is valid,
// sending again after a while to a master that failed, and, to a master
// still answering a background renewal of the lease, once it has answered
// that. It returns an error wrapping ErrLeaseLost (and ends the lease)
// when a majority reports the keys gone or taken, or the validity runs out
// first; a *QuorumError wrapping ctx's error when ctx ends first (the lease
// then stays held until its current validity runs out); and the lease's
// Err when it had already ended.
func (l *Lease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL(ttl, l.c.cfg.driftFactor, l.c.cfg.nodeTimeout); err != nil {
		return fmt.Errorf("distlock: extend %q: %w", l.req.name, err)
	}
	ttl = ttl.Truncate(time.Millisecond)
	if err := l.Err(); err != nil {
		return err
	}
	if err := l.c.enter(); err != nil {
		return err
	}
	defer l.c.exit()
	l.extendMu.Lock()
	defer l.extendMu.Unlock()
	ctx, span := l.c.tel.start(ctx, spanExtend, l.req.name)
	if span != nil {
		span.SetAttributes(attribute.Int64("distlock.lease.token", int64(l.token)), attribute.Int64("distlock.lease.ttl_ms", ttl.Milliseconds()))
	}
	errs := make([]error, len(l.c.nodes))
	err := l.extend(ctx, ttl, errs)
	l.c.recordMasterErrors(span, errs)
	end(span, err)
	return err
}

// extend is Extend's renewal, with l.extendMu held. It sends through the
// background renewal's path (renew.go) and keeps background renewals of l
// from sending meanwhile, so that at most one renewal of l is ever
// unanswered on a master: then each answer says what the key's expiry is
// now. It records each master's error in errs.
func (l *Lease) extend(ctx context.Context, ttl time.Duration, errs []error) error {
	l.settle() // a late acquire must not undo the new TTL
	c := l.c
	l.mu.Lock()
	now := c.now()
	if l.checkLocked(now) {
		l.mu.Unlock()
		return l.Err()
	}
	l.extending = true
	// Once sent, the new TTL may reach any master, answered or not: every
	// ack given under a longer TTL stops counting beyond it now, on every
	// master, including the answers of renewals still in flight.
	if v := now + int64(ttl-c.drift(ttl)); v < l.validUntil.Load() {
		l.capAcksLocked(v)
		l.setValidityLocked(v, now, true)
	}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.extending = false
		l.rescheduleLocked(c.now())
		l.mu.Unlock()
	}()

	type answer struct {
		node   int
		v      int64
		err    error
		result int // Lease.answered's
	}
	answers := make(chan answer, len(c.nodes)) // one per master in flight at most
	args := l.c.renewArgs(l.value, ttl)
	var sent uint64    // masters sent Extend's command, unless it failed
	var held uint64    // masters whose Extend failed, until again
	var granted uint64 // masters that renewed
	var heard uint64   // masters that answered
	var again <-chan time.Time
	// Masters that renewed grant. One that failed is not counted: it is
	// sent again, and may answer more than once. Extend ends when the
	// lease does (its validity ran out, or a majority reported its keys
	// gone) or ctx does, not when failures put a majority out of reach.
	tally := quorum.NewTally(len(c.nodes))
	for {
		l.mu.Lock()
		start := c.now()
		mask := c.all &^ l.inflight &^ l.gone &^ sent &^ held
		l.sendingLocked(mask, start, ttl)
		sent |= mask
		gone := bits.OnesCount64(l.gone)
		var freed <-chan struct{}
		if c.all&^sent&^l.gone != 0 {
			// Masters still answering a background renewal: their turn
			// comes when they have.
			if l.freed == nil {
				l.freed = make(chan struct{})
			}
			freed = l.freed
		}
		until := l.validUntil.Load()
		l.mu.Unlock()
		for i := range c.nodes {
			if mask&(1<<i) == 0 {
				continue
			}
			c.spawn(func() {
				ints, err := c.renewPipeline(c.stopping, c.renewWait(until, ttl), i, []string{l.req.key}, [][]string{args})
				answers <- answer{i, ints[0], err, l.answered(i, start, ttl, ints[0], err)}
			})
		}
		l.mu.Lock()
		// A master whose key a read found gone after it renewed
		// (lease_events.go) no longer counts: gone is final.
		won := bits.OnesCount64(granted&^l.gone) >= c.quorum
		l.mu.Unlock()
		if won {
			l.mu.Lock()
			l.ttl.Store(int64(ttl))
			l.args = l.c.renewArgs(l.value, ttl)
			l.setValidityLocked(l.quorumAckLocked(), c.now(), true)
			l.mu.Unlock()
			c.renewals(renewOK, 1)
			return l.Err()
		}
		select {
		case a := <-answers:
			heard |= 1 << a.node
			errs[a.node] = a.err
			switch a.v {
			case noReply: // send again, after a while
				sent &^= 1 << a.node
				held |= 1 << a.node
				if again == nil {
					again = time.After(l.resendDelay(ttl))
				}
			case 1:
				tally.Grant()
				granted |= 1 << a.node
			}
		case <-again:
			held, again = 0, nil
		case <-freed:
		case <-l.Done(): // lost: its validity ran out, or a majority said gone
			err := l.Err()
			if isLost(err) {
				c.renewals(renewGone, 1)
			}
			return err
		case <-ctx.Done():
			c.renewals(renewRetry, 1)
			l.mu.Lock()
			heard |= l.gone // not asked: their keys were seen gone (Held)
			l.mu.Unlock()
			c.silentErrs(errs, heard)
			return withCtx(&QuorumError{Op: "extend", Name: l.req.name, Granted: tally.Granted(), Held: gone, Needed: tally.Needed(), Errs: errs}, ctx.Err())
		}
	}
}

// resendDelay is how long Extend to ttl waits before it sends again to a
// master that failed: a tenth of the shorter of ttl and the lease's TTL,
// and no more than a third of the validity left, so that a longer TTL
// never waits past the lease's end for a master that was back long
// before (TestRedislockRefreshRetryTransientError, "longer TTL": 6 s for a
// 1 min Extend of a 5 s lease). At least 5 ms.
func (l *Lease) resendDelay(ttl time.Duration) time.Duration {
	d := min(ttl, l.TTL()) / 10
	if left := time.Duration(l.validUntil.Load()-l.c.now()) / 3; left < d {
		d = left
	}
	return max(d, 5*time.Millisecond)
}
