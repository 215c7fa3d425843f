package distlock

import "slices"

// The echo of a lease's own writes (docs/design.md, "Loss events"). The
// master names a lease's key after the lease's own acquire, handoff or
// renewal wrote it, as after anyone's: that message, its echo, says
// nothing new and is not read back. Messages are counted from before each
// such write until its answer is in, and the answer judges them: where the
// write landed, one message is its echo (when none has come yet, the next
// one is marked as such, echo); more, or any where it did not land, are
// read. A change by another program in the same turn of the master's
// event loop as the write is named in the same message, and left to the
// next renewal (TestAdv9LossMergedWithOwnWrite).

// lateCount is late's entry for one key: the masters still counted, and
// the messages each sent since the acquire began.
type lateCount struct {
	key  string // the lease's key
	mask uint64
	n    [MaxNodes]uint8
}

// deferred counts a message from master i naming the key of ls, for each
// of ls that counts messages there, and reports whether each of them
// defers it: a renewal of it is unanswered there (renewedOn judges), or it
// is the first message from a master still to answer its acquire when it
// was tracked (settledLate judges). Either may be the echo of the lease's
// own write. e.mu is held.
func (e *keyEvents) deferred(ls []*Lease, i int) bool {
	bit := uint64(1) << i
	all := true
	for _, l := range ls {
		d := false
		if l.renewCounting&bit != 0 {
			if l.renewCount[i] < 255 {
				l.renewCount[i]++
			}
			d = true
		}
		if lc := e.late[l]; lc != nil && lc.mask&bit != 0 {
			if lc.n[i] < 255 {
				lc.n[i]++
			}
			d = d || lc.n[i] == 1
		}
		all = all && d
	}
	return all
}

// echoChunk bounds the leases renewing and renewedOn handle per hold of
// e.mu: the masters' callbacks take e.mu on their connections' reading
// goroutines, so while a batch of 10,000 leases held it at once, every
// master's answers waited behind it (the largest share of e.mu's waits,
// holding 100,000 leases: BenchmarkHold in benchmarks/). Each lease is
// judged on its own, so nothing is lost between chunks.
const echoChunk = 128

// renewing starts counting, on master i, the messages naming the keys of
// the leases at idx, whose renewals are about to be sent there: renew.lua
// sends one of its own when it renews (renewedOn).
func (e *keyEvents) renewing(i int, leases []*Lease, idx []int) {
	bit := uint64(1) << i
	for lo := 0; lo < len(idx); lo += echoChunk {
		e.mu.Lock()
		for _, j := range idx[lo:min(lo+echoChunk, len(idx))] {
			l := leases[j]
			if l.renewCount == nil {
				l.renewCount = make([]uint8, len(e.check))
			}
			if l.renewCounting&bit != 0 {
				// An earlier renewal there is still to be judged: what
				// it counted cannot be told from this one's, so the
				// judgement reads the key rather than mark an echo that
				// may have come already (TestAdv17OverlappingRenewalsSwallowDelete).
				l.renewCount[i] = 2
				continue
			}
			l.renewCounting |= bit
			l.renewCount[i] = 0
		}
		e.mu.Unlock()
	}
}

// renewedOn judges, once master i answered the renewals of the leases at
// idx (answers: renew.lua's replies, or noReply), the messages naming
// their keys counted there meanwhile. A renewal that renewed sent one:
// with none yet, the one to come is marked as its echo; with one, nothing
// else changed; with more, the key is read. Otherwise any message is read
// (a renewal that found the key gone or taken says so itself).
func (e *keyEvents) renewedOn(i int, leases []*Lease, idx []int, answers []int64) {
	bit := uint64(1) << i
	for lo := 0; lo < len(idx); lo += echoChunk {
		e.mu.Lock()
		for k := lo; k < min(lo+echoChunk, len(idx)); k++ {
			l := leases[idx[k]]
			if l.renewCounting&bit == 0 {
				continue
			}
			l.renewCounting &^= bit
			switch echo, read := ownWrite(answers[k] == 1, l.renewCount[i]); {
			case echo:
				e.markEchoLocked(l, l.req.key, bit)
			case read:
				e.markLocked(l.req.key, bit)
			}
		}
		e.mu.Unlock()
	}
}

// ownWrite judges n, the messages a master sent naming a lease's key while
// one of the lease's own writes there (an acquire, a handoff, a renewal)
// was unanswered, once the answer says whether the write landed. A write
// that landed sent one of them, its echo: with none counted yet, the one
// to come is its echo (echo); a message beyond it, or any where the write
// did not land, says something else changed the key (read).
func ownWrite(landed bool, n uint8) (echo, read bool) {
	if landed {
		return n == 0, n >= 2
	}
	return false, n >= 1
}

// markEchoLocked marks, on the masters in mask, the next message naming
// key as the echo of l's own write; not once l has ended or is being
// released: the messages naming the key no longer went to l's count, its
// echo may have come and gone (to another lease of the key, or to none),
// and a mark would swallow the next message, another program's change
// included (TestAdv13RenewalOfHandedOverLease). e.mu is held.
func (e *keyEvents) markEchoLocked(l *Lease, key string, mask uint64) {
	if mask == 0 || l.releasing.Load() || !slices.Contains(e.byKey[key], l) {
		return
	}
	e.echo[key] |= mask
}

// unecho clears bit from key's echo mask b. e.mu is held.
func (e *keyEvents) unecho(key string, b, bit uint64) {
	if b &^= bit; b == 0 {
		delete(e.echo, key)
	} else {
		e.echo[key] = b
	}
}

// expect starts counting the messages that name key, for an acquire
// attempt or a handoff about to write it: readNew reads the key where
// they say more changed than that write. A new attempt starts again.
func (e *keyEvents) expect(key string) {
	e.mu.Lock()
	e.pending[key] = new([MaxNodes]uint8)
	e.mu.Unlock()
}

// unexpect stops counting for key: the acquire that expected it ended
// without a lease, or its lease joined byKey.
func (e *keyEvents) unexpect(key string) {
	e.mu.Lock()
	delete(e.pending, key)
	e.mu.Unlock()
}

// readNew asks for l's key to be read where something other than l's own
// write may have changed it since its acquire (or handoff) began: l was
// made before byKey held it, and a message naming its key in between
// found no lease (TestAdv8LossBeforeTracked, TestAdv8LossBeforeAdopted).
// Where l's write landed (granted, or still to answer), that write sends
// one message of its own: a second says more changed. Elsewhere any
// message does. Where the write was granted and its message has not come
// yet (it follows the answer on the connection, and may be handled after
// this), the message to come is marked as its echo (echo), and only a
// later one is read. With no count kept (expect was not called), every
// such master is read. Masters whose answer never came are left to their
// messages and renewals: a read there could overtake the command still on
// its way.
func (e *keyEvents) readNew(l *Lease) {
	l.mu.Lock()
	granted := l.ackedLocked()
	own := l.straggling | granted
	unanswered := l.unanswered
	l.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	counts, counted := e.pending[l.req.key]
	delete(e.pending, l.req.key)
	if !counted {
		e.markLocked(l.req.key, own)
		return
	}
	var read, echo uint64
	var late *lateCount
	for i := range e.check {
		bit := uint64(1) << i
		switch {
		case unanswered&bit != 0:
		case e.silent&bit != 0:
			read |= bit & own // no count to go by
		case own&bit != 0 && granted&bit == 0 && counts[i] < 2:
			// Still to answer: count on until it has (settledLate).
			if late == nil {
				late = &lateCount{key: l.req.key}
			}
			late.mask |= bit
			late.n[i] = counts[i]
		default:
			// Answered: granted (its write landed) or refused; or still
			// to answer with a message beyond its own write's (read).
			switch ec, r := ownWrite(own&bit != 0, counts[i]); {
			case ec:
				echo |= bit
			case r:
				read |= bit
			}
		}
	}
	e.markEchoLocked(l, l.req.key, echo)
	if late != nil && slices.Contains(e.byKey[l.req.key], l) { // not if l ended already
		e.late[l] = late
	}
	e.markLocked(l.req.key, read)
}

// settledLate judges, once the acquire's last answers are in (settle),
// the messages that the masters still to answer it when l was tracked
// sent since the acquire began (late). Where the acquire was granted, its
// write sent one of them: with none yet, the one to come is marked as its
// echo; with one, nothing else changed; with more, the key is read (it
// was when the second came). Where it was not granted, any message is
// read: the key changed, and a master whose answer never came counts as
// holding the lease until something says otherwise (mayHoldLocked).
func (e *keyEvents) settledLate(l *Lease) {
	l.mu.Lock()
	granted := l.ackedLocked()
	l.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	lc := e.late[l]
	if lc == nil {
		return
	}
	delete(e.late, l)
	var read, echo uint64
	for i := range e.check {
		bit := uint64(1) << i
		if lc.mask&bit == 0 {
			continue
		}
		switch ec, r := ownWrite(granted&bit != 0, lc.n[i]); {
		case ec:
			echo |= bit
		case r && granted&bit == 0:
			read |= bit // when granted, it was read when the second came
		}
	}
	e.markEchoLocked(l, lc.key, echo)
	e.markLocked(lc.key, read)
}
