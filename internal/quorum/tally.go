package quorum

// Tally counts the answers of one fan-out to n masters, one answer per
// master, and says when a majority has decided. The fan-outs of the
// protocol that count answers (acquire, fence, handoff, release and the
// batched deletes, Extend, New's dials) read them through one: the rule
// "a majority decides" is written here. (Background renewal settles
// each lease on its masters' acks instead, answer by answer.)
//
// An answer is one of three: the master did what was asked (Grant), it
// answered but another holder kept it from doing so (Refuse: the key held
// by another value, or another waiter first in line), or it did not answer
// usably (Fail: a timeout, a connection error, an error reply). The zero
// Tally is not usable: make one with NewTally.
type Tally struct {
	n, q                     int
	granted, refused, failed int
}

// NewTally returns the Tally of a fan-out to n masters.
func NewTally(n int) Tally { return Tally{n: n, q: Majority(n)} }

// Grant counts a master that did what was asked.
func (t *Tally) Grant() { t.granted++ }

// Refuse counts a master held by another holder.
func (t *Tally) Refuse() { t.refused++ }

// Fail counts a master that did not answer usably.
func (t *Tally) Fail() { t.failed++ }

// Granted, Refused and Failed return the counts so far; Needed the
// majority; Masters how many masters there are; Pending how many are
// still to answer.
func (t Tally) Granted() int { return t.granted }
func (t Tally) Refused() int { return t.refused }
func (t Tally) Failed() int  { return t.failed }
func (t Tally) Needed() int  { return t.q }
func (t Tally) Masters() int { return t.n }
func (t Tally) Pending() int { return t.n - t.granted - t.refused - t.failed }

// Won reports whether a majority granted.
func (t Tally) Won() bool { return t.granted >= t.q }

// Lost reports whether a majority can no longer grant, whatever the
// masters still to answer say.
func (t Tally) Lost() bool { return t.granted+t.Pending() < t.q }

// Decided reports whether the outcome is known: Won or Lost.
func (t Tally) Decided() bool { return t.Won() || t.Lost() }

// Reached reports whether no more masters failed than a majority can
// spare: the masters that answered, or may still, make a majority. A
// waiter whose attempt did not reach a majority cannot win, whoever holds
// the lock.
func (t Tally) Reached() bool { return t.failed <= t.n-t.q }

// ReachKnown reports whether Reached is final: whatever the masters still
// to answer say, it will not change (more than n-q failed already, or even
// if every one still to answer fails, no more than n-q will have).
func (t Tally) ReachKnown() bool {
	return t.failed > t.n-t.q || t.failed+t.Pending() <= t.n-t.q
}

// Locked reports whether a fan-out that has not won is kept from it by
// another holder rather than by masters failing: the refusals alone put a majority out of reach
// (more than n-q masters refused: with 4 masters, 2 refusals decide it
// before the others answer), or the masters that granted and those that
// refused would together have made one.
func (t Tally) Locked() bool {
	if t.refused == 0 || t.Won() {
		return false
	}
	return t.granted+t.refused >= t.q || t.Outvoted()
}

// Outvoted reports whether the refusals alone put a majority out of
// reach, whatever the other masters answer or fail to: more than n-q
// masters refused. Masters that failed do not count: they may still have
// granted.
func (t Tally) Outvoted() bool { return t.refused > t.n-t.q }
