package distlock

import (
	"fmt"
	"math/bits"
	"strings"
)

// How a lease is judged lost from what the masters report of its key: a
// renewal's answer (lease_renewal.go) or a read after a key-change message
// (lease_events.go). A master that reported the key gone or taken never
// counts for the lease again; once the masters that may still hold it are
// fewer than a majority, the lease ends (docs/design.md, "Loss events").
// A read is trusted only where nothing of the lease is still on its way to
// the master (readableOn).

// readableOn reports whether l's key on master i can be read now for
// what it says of l. Where the acquire (or handoff) that made l is still
// to be answered, or handoff.lua still to be sent, a read could overtake
// it and find the key without l's value: l is read there once that is
// done, by a goroutine that waits for it.
func (l *Lease) readableOn(i int) bool {
	bit := uint64(1) << i
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil || l.releasing.Load() || l.gone&bit != 0 {
		return false
	}
	if l.handedSent != nil {
		select {
		case <-l.handedSent:
			l.handedSent = nil
		default:
		}
	}
	if l.straggling&bit == 0 || l.settled.Load() && l.handedSent == nil {
		return true
	}
	if l.eventWait&bit != 0 {
		return false // a goroutine waits already
	}
	hs := l.handedSent
	c := l.c
	if !c.trySpawn(func() {
		l.settle()
		if hs != nil {
			select {
			case <-hs:
			case <-c.stop:
			}
		}
		l.mu.Lock()
		l.eventWait &^= bit
		l.mu.Unlock()
		c.events.recheck(i, l)
	}) {
		return false
	}
	l.eventWait |= bit
	return false
}

// seenGone records that a read after a key-change message found l's key
// on master i gone or taken (how), and ends l as lost when so many masters
// report that that no majority holds it. A lease being released is left
// alone: its own delete or handoff changes its keys.
func (l *Lease) seenGone(i int, how string) {
	l.settleIfIn()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil || l.releasing.Load() {
		return
	}
	l.goneLocked(i, how)
}

// goneLocked records that master i no longer holds l's key (how says
// what was seen, and by what), and ends l as lost when so many masters
// report it that no majority can hold l; it reports whether it did. A
// master that reported it never counts for l again. l.mu is held.
func (l *Lease) goneLocked(i int, how string) bool {
	bit := uint64(1) << i
	l.acks[i] = 0
	if l.gone&bit == 0 {
		l.gone |= bit
		if l.goneHow == nil {
			l.goneHow = make([]string, len(l.acks))
		}
		l.goneHow[i] = how
	}
	c := l.c
	if bits.OnesCount64(l.mayHoldLocked()) >= c.quorum {
		if !l.settled.Load() && l.straggling&^l.gone != 0 && !l.settleCheck {
			// Masters still to answer the acquire count as holding
			// until they have: take their answers now, and judge again
			// (a refusal among them may leave no majority).
			l.settleCheck = true
			c.trySpawn(func() {
				l.settle()
				l.mu.Lock()
				defer l.mu.Unlock()
				if l.err == nil && !l.releasing.Load() && bits.OnesCount64(l.mayHoldLocked()) < c.quorum {
					l.endLocked(l.goneErrorLocked())
				}
			})
		}
		return false
	}
	return l.endLocked(l.goneErrorLocked())
}

// goneErrorLocked is the loss of l once the masters that report its key
// gone or taken leave no majority that can hold it. l.mu is held. Its
// text is made when read: when thousands of leases are lost at once,
// formatting each one's would delay the next one's Done.
func (l *Lease) goneErrorLocked() error {
	e := &goneError{name: l.req.name, masters: len(l.c.nodes), how: make([]string, len(l.goneHow))}
	for j, h := range l.goneHow {
		if l.gone&(1<<j) != 0 {
			e.how[j] = h
		}
	}
	return e
}

// goneError is the Err of a lease whose key too many masters reported gone
// or taken; it wraps ErrLeaseLost.
type goneError struct {
	name    string
	masters int
	how     []string // per master: what said its key was gone ("" if none did)
}

func (e *goneError) Error() string {
	var seen []string
	for j, h := range e.how {
		if h != "" {
			seen = append(seen, fmt.Sprintf("master %d %s", j, h))
		}
	}
	return fmt.Sprintf("%v: %q: %d of %d masters report its key gone or taken, and no majority can hold it: %s",
		ErrLeaseLost, e.name, len(seen), e.masters, strings.Join(seen, "; "))
}

func (e *goneError) Unwrap() error { return ErrLeaseLost }

// mayHoldLocked returns the masters that may still hold l's key: those
// whose answer to the acquire (or handoff) that made l granted it, or a
// renewal's did since (an ack), and those whose answer is still to come
// or never came; less those seen gone since. A master that refused l (another
// value held the key there) never held it: it is not counted as holding
// until something reports it gone (TestAdv8LossWithRefusingMaster). l.mu
// is held.
func (l *Lease) mayHoldLocked() uint64 {
	m := l.unanswered
	if !l.settled.Load() {
		m |= l.straggling
	}
	return (m | l.ackedLocked()) &^ l.gone
}

// ackedLocked returns the masters whose last answer (the acquire's or
// handoff's grant, or a renewal) says they hold l's key. l.mu is held.
func (l *Lease) ackedLocked() uint64 {
	var m uint64
	for i, a := range l.acks {
		if a != 0 {
			m |= 1 << i
		}
	}
	return m
}

// settleIfIn takes the acquire's last answers now if they are all in:
// here, rather than on a goroutine of goneLocked's or readableOn's, one
// per lease when thousands of leases are read or lost at once. l.mu is not
// held.
func (l *Lease) settleIfIn() {
	if !l.settled.Load() && len(l.stragglers) >= l.pending {
		l.settle()
	}
}
