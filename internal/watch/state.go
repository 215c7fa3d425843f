// Package watch holds the pure part of distlock's Watch: merging what each
// master reports about one lock key into the lock's holds, as data. It
// does no I/O, starts no goroutine and reads no clock: the caller passes
// each master's report and the time, and gets back the changes to emit.
package watch

import (
	"slices"
	"time"
)

// LagWindow is how far apart in time the masters' reports of one hold may
// arrive and still be taken as one hold. A watcher's connections to the
// masters deliver at different speeds (another network path, a master
// busier than the others, a message held back until its keyspace event
// confirms it), so a hold of 1 ms may end on one master's stream before it
// begins on another's. The window bounds two guesses:
//   - a master's report of a value counts toward that value's hold for
//     LagWindow after the master reported its end there (cumulatively:
//     the masters need not hold it at one instant, as this Client sees
//     them);
//   - once a hold has ended, a master that had not reported the value in
//     it, and reports it within LagWindow, is taken to be late with that
//     hold, not to start a new one.
const LagWindow = 300 * time.Millisecond

// hold is one value's hold: from a master's first report of the value
// until the value cannot be on a majority any more. A value held, gone,
// and held again later (an Acquire that retried with the same value) is
// two holds.
type hold struct {
	value    string
	held     []bool  // per master: reported holding value in this hold
	late     []bool  // per master: its report came after the hold ended
	ends     []How   // per master: how value went there (0: it has not)
	endAt    []int64 // per master: when that end was reported
	acquired bool
	endedAt  int64 // when the hold ended (acquired holds only)
}

func (h *hold) count() int {
	n := 0
	for _, held := range h.held {
		if held {
			n++
		}
	}
	return n
}

// masterView is one master's last word.
type masterView struct {
	known bool
	value string // "" when free
	hold  *hold  // the hold value is part of; nil when free
}

// State is the merged state of one lock key over its masters: every hold
// some master reported, and the one a majority reported (the holder). The
// zero value is not usable: see NewState. Not safe for concurrent use.
type State struct {
	quorum  int
	masters []masterView
	holder  *hold            // acquired and not ended; nil when free
	open    map[string]*hold // reported by some master, not (yet) acquired
	ended   []*hold          // ended within LagWindow: late reports are theirs
	started bool             // the first state has been told
}

// NewState returns the state of a key over n masters, of which quorum make
// a majority, with every master unknown.
func NewState(n, quorum int) *State {
	return &State{quorum: quorum, masters: make([]masterView, n), open: make(map[string]*hold)}
}

// Started reports whether the first state has been told: a majority
// reported a value, or enough masters reported that none can have one.
func (s *State) Started() bool { return s.started }

// Holder returns the value a majority reported holding whose end has not
// been told, and how many masters reported it; "" when none.
func (s *State) Holder() (string, int) {
	if s.holder == nil {
		return "", 0
	}
	return s.holder.value, s.holder.count()
}

// Known reports whether master m's word on the key stands: it was read or
// reported, and not lost since.
func (s *State) Known(m int) bool { return s.masters[m].known }

// MasterFree reports whether master m last said the key is free.
func (s *State) MasterFree(m int) bool {
	return s.masters[m].known && s.masters[m].value == ""
}

// Observe records r, received at now (any monotonic clock, in ns), and
// returns the changes it makes, in order.
func (s *State) Observe(r Report, now int64) []Change {
	s.prune(now)
	mv := &s.masters[r.Master]
	if !r.Known {
		mv.known = false
		return s.settle(now, nil)
	}
	mv.known = true
	if r.Value != "" && r.Value == mv.value && mv.hold != nil {
		return s.settle(now, nil) // held still (a renewal, a read)
	}
	if mv.hold != nil {
		how := r.How
		if how == 0 {
			how = HowUnknown
		}
		mv.hold.ends[r.Master] = how
		mv.hold.endAt[r.Master] = now
	}
	mv.value, mv.hold = r.Value, nil
	var h *hold
	if r.Value != "" {
		h = s.holdOf(r.Master, r.Value)
		h.held[r.Master] = true
		h.ends[r.Master] = 0
		mv.value, mv.hold = r.Value, h
	}
	return s.settle(now, h)
}

// holdOf returns the hold that master m's new report of value belongs to.
func (s *State) holdOf(m int, value string) *hold {
	if s.holder != nil && s.holder.value == value {
		return s.holder
	}
	if h := s.open[value]; h != nil {
		return h
	}
	for _, h := range s.ended {
		if h.value == value && !h.held[m] {
			h.late[m] = true
			return h // a master late with a hold that has ended
		}
	}
	n := len(s.masters)
	h := &hold{value: value, held: make([]bool, n), late: make([]bool, n), ends: make([]How, n), endAt: make([]int64, n)}
	s.open[value] = h
	// The value is held anew (an Acquire retrying with the same value).
	// A master taken for late with its ended hold, and holding it still,
	// may as well have been early with this one: it counts here too, so
	// that the new hold is not missed for the order of the reports.
	for i := range s.masters {
		if e := s.masters[i].hold; i != m && e != nil && e.late[i] && e.ends[i] == 0 && e.value == value {
			s.masters[i].hold = h
			h.held[i] = true
		}
	}
	return h
}

// prune forgets what LagWindow no longer covers: holds ended before it,
// and masters' reports of open holds they reported gone before it.
func (s *State) prune(now int64) {
	cut := now - int64(LagWindow)
	kept := s.ended[:0]
	for _, h := range s.ended {
		if h.endedAt >= cut {
			kept = append(kept, h)
		}
	}
	clear(s.ended[len(kept):])
	s.ended = kept
	for v, h := range s.open {
		for m := range h.held {
			if h.held[m] && h.ends[m] != 0 && h.endAt[m] < cut {
				h.held[m] = false
			}
		}
		if h.count() == 0 {
			delete(s.open, v)
		}
	}
}

// mayHold counts the masters that may still hold h's value: those that
// say they hold it in h, and those unreachable. (A master whose stream is
// late with the value does not count: it is free as far as it has told, and
// the hold is acquired on the others' word.)
func (s *State) mayHold(h *hold) int {
	n := 0
	for _, mv := range s.masters {
		if !mv.known || mv.hold == h {
			n++
		}
	}
	return n
}

// holdsNow counts the masters reachable and saying they hold h's value.
func (s *State) holdsNow(h *hold) int {
	n := 0
	for _, mv := range s.masters {
		if mv.known && mv.hold == h {
			n++
		}
	}
	return n
}

// Free reports whether the lock is free as far as the masters have told:
// no holder, or too few masters may still hold its value. (The holder's
// end may not be told yet: how it went waits for more masters' word.)
func (s *State) Free() bool {
	return s.holder == nil || s.mayHold(s.holder) < s.quorum
}

// end ends the holder and returns the change that says so: released when
// a majority reported its delete, expired otherwise. forced: a new holder
// ends it while some masters still hold its value; these count as deletes
// on their way when others reported deletes and none an expiry. (Under
// contention a holder that yields, or releases, deletes its keys on every
// master at once, and a new holder may win a majority before the last of
// those deletes comes; a holder whose keys expire cannot be replaced
// until they have expired on a majority.)
func (s *State) end(now int64, forced bool) Change {
	h := s.holder
	s.holder = nil
	h.endedAt = now
	s.ended = append(s.ended, h)
	gone := 0
	for _, mv := range s.masters {
		if mv.known && mv.hold != h {
			gone++
		}
	}
	c := Change{Kind: Expired, Value: h.value, Masters: gone}
	deleted := s.deleted(h)
	if forced && deleted > 0 && !slices.Contains(h.ends, HowExpired) {
		for _, mv := range s.masters {
			if mv.hold == h {
				deleted++
			}
		}
	}
	if deleted >= s.quorum {
		c.Kind = Released
	}
	return c
}

// deleted counts the masters that reported a delete of h's value.
func (s *State) deleted(h *hold) int {
	n := 0
	for _, how := range h.ends {
		if how == HowDeleted {
			n++
		}
	}
	return n
}

// settle returns the changes the latest report makes: touched's
// acquisition, once a majority reported it (ending a holder still standing
// first: two holds of a majority cannot overlap, and the newer one is the
// truth); and the holder's end, once too few masters may still hold it
// and how it went is known: a majority reported its delete (released), or
// too few masters are left to report one (expired).
func (s *State) settle(now int64, touched *hold) []Change {
	var out []Change
	if h := s.candidate(touched); h != nil {
		if s.holderStands() {
			s.forgetBefore(h)
		} else {
			out = append(out, s.acquire(now, h)...)
		}
	}
	if s.holderEnds() {
		out = append(out, s.end(now, false))
	}
	if !s.started && s.surelyFree() {
		s.started = true
	}
	return out
}

// candidate returns the hold that may be acquired now: touched, when a
// majority reported it and it is not acquired yet; else, unless the
// holder is held by a majority right now, an open hold a majority
// reported (one the holder's masters did not all move past: see
// forgetBefore); nil when none.
func (s *State) candidate(touched *hold) *hold {
	if touched != nil && !touched.acquired && touched.count() >= s.quorum {
		return touched
	}
	if s.holderStands() {
		return nil
	}
	for _, h := range s.open {
		if h.count() >= s.quorum {
			return h
		}
	}
	return nil
}

// holderStands reports whether there is a holder and a majority of
// masters, reachable, say they hold it right now.
func (s *State) holderStands() bool {
	return s.holder != nil && s.holdsNow(s.holder) >= s.quorum
}

// forgetBefore forgets the reports of h's value by masters that have
// reported its end and hold the holder now. The holder is held by a
// majority right now: a value that only adds up to a majority over time,
// with masters that have moved on to the holder since, held them before
// it (an Acquire's failed attempts with one value, or a hold told too late
// to keep the order): what those masters said of it before the holder no
// longer counts.
func (s *State) forgetBefore(h *hold) {
	for m, mv := range s.masters {
		if h.held[m] && h.ends[m] != 0 && mv.hold == s.holder {
			h.held[m] = false
		}
	}
}

// acquire makes h the holder and returns the changes that say so: the
// end of the holder before it, if any, and h's acquisition.
func (s *State) acquire(now int64, h *hold) []Change {
	var out []Change
	if s.holder != nil {
		out = append(out, s.end(now, true))
	}
	h.acquired = true
	delete(s.open, h.value)
	s.holder = h
	out = append(out, Change{Kind: Acquired, Value: h.value, Masters: h.count(), Initial: !s.started})
	s.started = true
	return out
}

// holderEnds reports whether the holder's end can be told: too few
// masters may still hold its value, and how it went is known (a majority
// reported its delete, or too few masters are left to report one).
func (s *State) holderEnds() bool {
	h := s.holder
	if h == nil {
		return false
	}
	may := s.mayHold(h)
	if may >= s.quorum {
		return false
	}
	del := s.deleted(h)
	return del >= s.quorum || del+may < s.quorum
}

// surelyFree reports whether the lock is free for certain: no value can
// have a majority, counting every unreachable master as holding it.
func (s *State) surelyFree() bool {
	unknown, best := 0, 0
	counts := make(map[string]int)
	for _, mv := range s.masters {
		if !mv.known {
			unknown++
		} else if mv.value != "" {
			counts[mv.value]++
			best = max(best, counts[mv.value])
		}
	}
	return best+unknown < s.quorum
}
