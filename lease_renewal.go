package distlock

import (
	"math/bits"
	"slices"
	"time"
)

// A lease's renewal state: which masters a renewal of it goes to, what
// each master's answer guarantees (its ack), and how the answers settle
// the lease. The renewer (renew.go) and Extend (extend.go) send; these
// methods decide and record, under the lease's mu.

// renewWaiting is what an answer that settled nothing returns (answered):
// the lease waits for other answers, or for its next renewal.
const renewWaiting = numRenewResults

// claim marks the masters that a renewal of l sent at now goes to: those
// with no renewal of l unanswered, whose key is not known gone, and whose
// ack does not already reach beyond l's validity. It returns them, the TTL
// to send, renew.lua's arguments (nil when no master) and l's validity.
// It returns no master when l has ended or an Extend of it is running.
func (l *Lease) claim(now int64) (mask uint64, ttl time.Duration, args []string, until int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.checkLocked(now) || l.extending {
		return 0, 0, nil, 0
	}
	if mask = l.helpersLocked(); mask == 0 {
		return 0, 0, nil, 0
	}
	ttl, until = l.TTL(), l.validUntil.Load()
	l.sendingLocked(mask, now, ttl)
	return mask, ttl, l.args, until
}

// renewArgs returns renew.lua's arguments for a lease with value and ttl.
func (c *Client) renewArgs(value string, ttl time.Duration) []string {
	return []string{value, c.ttlArg(ttl)}
}

// helpersLocked returns the masters a renewal of l can be sent to now.
// l.mu is held.
func (l *Lease) helpersLocked() uint64 {
	mask := l.c.all &^ l.inflight &^ l.gone
	if l.handedSent != nil {
		select {
		case <-l.handedSent:
			l.handedSent = nil
		default:
			// handoff.lua has not gone out to every straggling master
			// yet: a renewal there would find the old value, and mark
			// the master gone for good.
			mask &^= l.straggling
		}
	}
	until := l.validUntil.Load()
	for i, a := range l.acks {
		if a > until {
			mask &^= 1 << i
		}
	}
	return mask
}

// sendingLocked records that a renewal with ttl, sent at now, is on its
// way to the masters in mask. l.mu is held.
func (l *Lease) sendingLocked(mask uint64, now int64, ttl time.Duration) {
	l.inflight |= mask
	// Until it is answered, the key on such a master lives at least until
	// the earlier of its ack and what this renewal sets: the ack comes
	// down only when the TTL sent is shorter (Extend).
	a := now + int64(ttl-l.c.drift(ttl))
	for i := range l.acks {
		if mask&(1<<i) != 0 && l.acks[i] > a {
			l.acks[i] = a
		}
	}
}

// capAcksLocked bounds every master's ack by v, when an Extend asks for a
// shorter TTL whose validity is v: what a master said it keeps under the
// longer TTL no longer holds once the shorter one reaches it. Renewals
// still unanswered are bounded too, when their answer comes (answered).
// l.mu is held.
func (l *Lease) capAcksLocked(v int64) {
	for i := range l.acks {
		l.acks[i] = min(l.acks[i], v)
		if l.inflight&(1<<i) != 0 && (l.ackCap[i] == 0 || l.ackCap[i] > v) {
			l.ackCap[i] = v
		}
	}
}

// answered records master i's answer v (a renew.lua reply, or noReply) to
// a renewal of l sent at start with ttl, and settles l: renewed when a
// majority's acks move its validity later, lost when a majority reports
// its key gone or taken, retried when it is overdue and a master can still
// help. It returns which (renewOK, renewGone, renewRetry), or renewWaiting.
func (l *Lease) answered(i int, start int64, ttl time.Duration, v int64, err error) int {
	c := l.c
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight &^= 1 << i
	switch {
	case v == noReply && err != nil:
		if l.renewErr == nil {
			l.renewErr = make([]error, len(l.acks))
		}
		l.renewErr[i] = err
	case v != noReply && l.renewErr != nil:
		l.renewErr[i] = nil
	}
	capped := l.ackCap[i]
	l.ackCap[i] = 0
	if l.freed != nil {
		close(l.freed)
		l.freed = nil
	}
	now := c.now()
	if l.checkLocked(now) {
		return renewWaiting
	}
	switch v {
	case noReply:
		if u := l.unknownTTL[i]; u == 0 || ttl < u {
			l.unknownTTL[i] = ttl
		}
	case 1:
		if l.gone&(1<<i) != 0 {
			// A read after a key-change message found the key gone
			// there (lease_events.go): this answer, sent before, is
			// older news, and the key is never l's there again.
			break
		}
		if u := l.unknownTTL[i]; u != 0 && u < ttl {
			// A shorter renewal of ours may still arrive after this one:
			// it would set its TTL from when it arrives, after start.
			ttl = u
		}
		a := start + int64(ttl-c.drift(ttl))
		if capped != 0 && a > capped {
			a = capped // a shorter TTL was asked for since it was sent
		}
		l.acks[i] = a
		if l.setValidityLocked(l.quorumAckLocked(), now, false) {
			if !l.extending { // else Extend schedules l when it ends
				c.renewer.add(l, l.dueLocked())
			}
			return renewOK
		}
	case 0:
		if l.goneLocked(i, "gone (renewal)") {
			return renewGone
		}
	case -1:
		if l.goneLocked(i, "held by another value (renewal)") {
			return renewGone
		}
	}
	return l.retryLocked(now)
}

// quorumAckLocked returns the majority-th latest ack of l's masters: a
// majority keep its key at least that long. l.mu is held.
func (l *Lease) quorumAckLocked() int64 {
	var buf [MaxNodes]int64
	a := buf[:len(l.acks)]
	copy(a, l.acks)
	slices.Sort(a)
	return a[len(a)-l.c.quorum]
}

// dueLocked returns when l's next renewal is due: a third of its TTL after
// the renewal its validity counts from. l.mu is held.
func (l *Lease) dueLocked() int64 {
	ttl := l.TTL()
	return l.validUntil.Load() - int64(ttl-l.c.drift(ttl)) + int64(ttl/3)
}

// retryLocked schedules l again when its renewal is overdue and some
// master can still help: a tenth of a TTL from now, or, while the answers
// still to come can make a majority with the acks already beyond the
// validity, once a third of the TTL is all that is left of the validity
// (a renewal period late): when the masters are merely slow, a renewal
// sent to yet another master would only add to its load. When no master
// can help, the answers still to come decide. It returns renewRetry when
// it scheduled l, else renewWaiting. l.mu is held.
func (l *Lease) retryLocked(now int64) int {
	if l.extending || l.dueLocked() > now || l.helpersLocked() == 0 {
		return renewWaiting
	}
	ttl := l.TTL()
	at := now + int64(max(ttl/10, 5*time.Millisecond))
	if l.pendingMayRenewLocked() {
		at = max(at, l.validUntil.Load()-int64(ttl/3))
	}
	if l.c.renewer.retry(l, at) {
		return renewRetry
	}
	return renewWaiting
}

// pendingMayRenewLocked reports whether the renewals of l still
// unanswered could, with the acks already beyond its validity, make a
// majority. l.mu is held.
func (l *Lease) pendingMayRenewLocked() bool {
	mask := l.inflight
	until := l.validUntil.Load()
	for i, a := range l.acks {
		if a > until {
			mask |= 1 << i
		}
	}
	return bits.OnesCount64(mask) >= l.c.quorum
}

// rescheduleLocked schedules l's next renewal after an Extend: at its due
// time, or as a retry when that has passed. l.mu is held.
func (l *Lease) rescheduleLocked(now int64) {
	if l.err != nil {
		return
	}
	if due := l.dueLocked(); due > now {
		l.c.renewer.add(l, due)
		return
	}
	l.retryLocked(now)
}
