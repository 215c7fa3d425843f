package soak

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// The checks, on the history the store recorded.
//
// Overlap. A section's span is [Start, LastHeld]: from the moment Acquire
// returned until the last time the holder checked Lease.Err and saw nil,
// the check after which it acted. (A lost lease's section goes on until
// the holder noticed Done, but it acts only after a check, and a check
// made after the validity ran out fails.) Two sections overlap when one
// starts before the other's span has ended. Distlock promises that a
// check succeeds only before any other client could take the lock, so no
// two spans may overlap while the masters keep their data: the only
// excuse is a master that came back without its data (at once, not after
// waiting a TTL) while one of the two leases lived, or keys that vanished
// early (PEXPIRE 1, the stand-in for a clock jump) so that a value was left
// on fewer than a majority, while one of the two lived. Late delivery of
// commands after a reconnect excuses nothing.
//
// Token order. If lease A's Acquire returned before lease B's began, B's
// token must be larger. The store sees the consequence: a holder paused
// past its TTL between its check and its write must find its write
// refused once a later lease has written. Both hold only for leases whose
// Acquire returned before any master lost its fence counters. Keys that
// vanished early excuse no token regression: the fence counters are intact.
// More precisely, a regression (or a token given twice, or a stale write
// accepted) is excused only when a master lost its counters between the
// earlier lease's Acquire began and the later one's returned: once a
// lease's token is fenced on a majority, only a loss after that can let
// a later majority draw a lower one.

type history struct {
	sections  []section
	writes    []write
	ttl       time.Duration
	exposures []interval
	vanishes  []vanish
	losses    []int64 // when masters lost their fence counters (kills without persistence), sorted
	pauses    map[int][]interval
}

type figures struct {
	Sections, Lost             int
	Accepted, Rejected         int
	Overlaps, OverlapsExcused  int
	OverlapsVanished           int // excused: right after keys vanished from a majority
	Regressions, RegressionsOK int // OK: after counters were lost
	Duplicates                 int
	Stale, StaleRejected       int
	StaleMust                  int // stale writes a later lease's write preceded
	LateRejected               int // rejected, holder not paused, token in order
	BackwardsRejected          int // rejected, holder not paused, its token regressed
	NoticeLag                  []time.Duration
	// Leases lost while a master came back empty at once, and of those,
	// how many noticed (Done closed) before the next holder's Acquire
	// returned: the key-change messages' doing, where the masters send
	// them (lease_events.go in the library).
	EmptyLost, EmptyNoticedFirst int
	Modes                        map[string]int // sections by how the lease was taken
	Extends, ExtendsShorter      int
	ExtendsFailed                int
	ReleaseLost                  int      // Release found the lease lost after the last check
	Violations                   []string // what must not happen
}

// exposed reports whether a master came back empty at once while s lived
// (from its Acquire's start to its last successful check).
// lossBetween reports whether a master lost its fence counters in
// [from, to].
func (h *history) lossBetween(from, to int64) bool {
	i, _ := slices.BinarySearch(h.losses, from)
	return i < len(h.losses) && h.losses[i] <= to
}

func (h *history) exposed(s section) bool {
	for _, e := range h.exposures {
		if e.From <= s.LastHeld && s.AcqStart <= e.To {
			return true
		}
	}
	return false
}

// vanished reports whether keys vanished early, taking a value below a
// majority, while s lived.
func (h *history) vanished(s section) bool {
	for _, v := range h.vanishes {
		if v.Breaking && v.From <= s.LastHeld && s.AcqStart <= v.To {
			return true
		}
	}
	return false
}

func analyze(h history) figures {
	var f figures
	secs := slices.Clone(h.sections)
	f.Sections = len(secs)
	f.Modes = make(map[string]int)
	byID := make(map[int64]section, len(secs))
	for _, s := range secs {
		byID[s.ID] = s
		f.Modes[s.Mode]++
		f.Extends += s.Extends
		f.ExtendsShorter += s.ExtendsShorter
		f.ExtendsFailed += s.ExtendsFailed
		if s.ReleaseLost {
			f.ReleaseLost++
		}
		if s.Lost {
			f.Lost++
			if !h.pausedDuring(s) { // a paused holder notices when it runs again
				f.NoticeLag = append(f.NoticeLag, time.Duration(s.Stop-s.Deadline))
			}
		}
		if s.Violation != "" {
			f.Violations = append(f.Violations, fmt.Sprintf("section %d (%s, token %d): %s", s.ID, s.Worker, s.Token, s.Violation))
		}
	}
	slices.Sort(f.NoticeLag)

	// Overlaps: sweep by Start, keeping the spans not yet ended.
	sort.Slice(secs, func(i, j int) bool { return secs[i].Start < secs[j].Start })
	for i, a := range secs {
		if !a.Lost || !h.exposed(a) || i+1 == len(secs) {
			continue
		}
		f.EmptyLost++
		if a.Stop <= secs[i+1].Start {
			f.EmptyNoticedFirst++
		}
	}
	var active []section
	for _, b := range secs {
		if b.LastHeld == 0 {
			continue // never confirmed it held the lease
		}
		kept := active[:0]
		for _, a := range active {
			if a.LastHeld <= b.Start {
				continue
			}
			kept = append(kept, a)
			if h.exposed(a) || h.exposed(b) {
				f.OverlapsExcused++
				continue
			}
			if h.vanished(a) || h.vanished(b) {
				f.OverlapsVanished++
				continue
			}
			f.Overlaps++
			if f.Overlaps <= 5 {
				f.Violations = append(f.Violations, fmt.Sprintf(
					"overlap: section %d (%s, token %d) held [%s, %s]; section %d (%s, token %d) started at %s",
					a.ID, a.Worker, a.Token, ts(a.Start), ts(a.LastHeld), b.ID, b.Worker, b.Token, ts(b.Start)))
			}
		}
		active = append(kept, b)
	}

	// Token order: B must beat every A whose Acquire returned before B's
	// began, unless a master lost its counters between A's Acquire began
	// and B's returned. A token given again is excused only the same way.
	tokens := make(map[uint64][]section, len(secs))
	for _, s := range secs {
		tokens[s.Token] = append(tokens[s.Token], s)
	}
	for tok, holders := range tokens {
		if len(holders) < 2 {
			continue
		}
		f.Duplicates += len(holders) - 1
		sort.Slice(holders, func(i, j int) bool { return holders[i].Start < holders[j].Start })
	pairs:
		for j, s := range holders[1:] {
			for _, p := range holders[:j+1] {
				if !h.lossBetween(min(p.AcqStart, s.AcqStart), s.Start) {
					f.Violations = append(f.Violations, fmt.Sprintf("token %d given to %d leases", tok, len(holders)))
					break pairs
				}
			}
		}
	}
	byAcq := slices.Clone(secs)
	sort.Slice(byAcq, func(i, j int) bool { return byAcq[i].AcqStart < byAcq[j].AcqStart })
	var maxTok uint64
	var maxSec section
	regressed := make(map[int64]bool)
	i := 0
	for _, b := range byAcq {
		for ; i < len(secs) && secs[i].Start < b.AcqStart; i++ {
			if secs[i].Token > maxTok {
				maxTok, maxSec = secs[i].Token, secs[i]
			}
		}
		if maxTok == 0 || b.Token > maxTok {
			continue
		}
		regressed[b.ID] = true
		// A master that lost its counters after A's Acquire began and
		// before B's returned may have voted for B: no promise then. The
		// witness is any such A with a token at least B's, not only the
		// highest.
		witness, excused := maxSec, true
		for _, a := range secs[:i] {
			if a.Token >= b.Token && !h.lossBetween(a.AcqStart, b.Start) {
				witness, excused = a, false
				break
			}
		}
		if excused {
			f.RegressionsOK++
			continue
		}
		f.Regressions++
		if f.Regressions <= 5 {
			f.Violations = append(f.Violations, fmt.Sprintf(
				"token regression: section %d (%s) began acquiring at %s and got token %d, but section %d (%s) acquired at %s with token %d",
				b.ID, b.Worker, ts(b.AcqStart), b.Token, witness.ID, witness.Worker, ts(witness.Start), witness.Token))
		}
	}

	// The store's view.
	accepted := make([]write, 0, len(h.writes))
	for _, w := range h.writes {
		if w.Accepted {
			f.Accepted++
			accepted = append(accepted, w)
		} else {
			f.Rejected++
		}
	}
	for _, w := range h.writes {
		if !h.pausedPastTTL(w) {
			switch {
			case w.Accepted:
			case regressed[w.Section]:
				f.BackwardsRejected++
			default:
				f.LateRejected++
			}
			continue
		}
		f.Stale++
		if !w.Accepted {
			f.StaleRejected++
		}
		// Did a lease that began acquiring after w's check write first?
		// (strict: one whose Acquire returned before any master lost its
		// counters, so its token had to be higher.)
		must, strict := false, false
		for _, v := range accepted {
			if v.Received >= w.Received {
				break
			}
			if s, ok := byID[v.Section]; ok && s.AcqStart > w.Checked {
				must = true
				strict = strict || !h.lossBetween(byID[w.Section].AcqStart, s.Start)
			}
		}
		if !must {
			continue
		}
		f.StaleMust++
		if w.Accepted && strict {
			f.Violations = append(f.Violations, fmt.Sprintf(
				"stale write accepted: section %d, token %d, checked at %s, received at %s after a pause past the TTL, and after a later lease's write",
				w.Section, w.Token, ts(w.Checked), ts(w.Received)))
		}
	}
	return f
}

// pausedPastTTL reports whether w's process was stopped for longer than
// the TTL between w's check and the store's receipt of w.
func (h *history) pausedPastTTL(w write) bool {
	for _, p := range h.pauses[w.Proc] {
		if p.To-p.From > int64(h.ttl) && w.Checked <= p.From && w.Received >= p.To {
			return true
		}
	}
	return false
}

// pausedDuring reports whether s's process was stopped during s.
func (h *history) pausedDuring(s section) bool {
	for _, p := range h.pauses[s.Proc] {
		if p.From <= s.Stop && s.Start <= p.To {
			return true
		}
	}
	return false
}

func ts(ns int64) string { return time.Unix(0, ns).UTC().Format("15:04:05.000000") }

// percentile returns the p-th percentile of sorted d (0 if empty).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(p*float64(len(d))))]
}
