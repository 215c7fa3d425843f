package soak

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The checks themselves, on made-up histories: each must catch what it is
// for, and excuse only what it should.
func TestAnalyze(t *testing.T) {
	const ms = int64(time.Millisecond)
	ttl := time.Second
	// Two leases, one after the other, tokens rising: nothing to report.
	a := section{ID: 1, Worker: "a", Token: 64, AcqStart: 0, Start: 10 * ms, LastHeld: 50 * ms, Stop: 51 * ms}
	b := section{ID: 2, Worker: "b", Token: 128, AcqStart: 5 * ms, Start: 60 * ms, LastHeld: 90 * ms, Stop: 91 * ms}
	tests := []struct {
		name       string
		h          history
		violations []string // substrings, one per violation, in order
		check      func(t *testing.T, f figures)
	}{
		{name: "clean", h: history{sections: []section{a, b}}},
		{
			name:       "overlap",
			h:          history{sections: []section{a, with(b, func(s *section) { s.Start = 40 * ms })}},
			violations: []string{"overlap: section 1"},
			check:      func(t *testing.T, f figures) { want(t, "Overlaps", f.Overlaps, 1) },
		},
		{
			name: "overlap next to a master back empty",
			h: history{sections: []section{a, with(b, func(s *section) { s.Start = 40 * ms })},
				exposures: []interval{{20 * ms, 30 * ms}}},
			check: func(t *testing.T, f figures) { want(t, "OverlapsExcused", f.OverlapsExcused, 1) },
		},
		{
			// a lost next to a master back empty: noticed (Stop) before b
			// began, or only after.
			name: "lost next to a master back empty, noticed first",
			h: history{sections: []section{with(a, func(s *section) { s.Lost = true; s.LastHeld = 25 * ms; s.Stop = 26 * ms }), b},
				exposures: []interval{{20 * ms, 30 * ms}}},
			check: func(t *testing.T, f figures) {
				want(t, "EmptyLost", f.EmptyLost, 1)
				want(t, "EmptyNoticedFirst", f.EmptyNoticedFirst, 1)
			},
		},
		{
			name: "lost next to a master back empty, noticed late",
			h: history{sections: []section{with(a, func(s *section) { s.Lost = true; s.LastHeld = 25 * ms; s.Stop = 70 * ms }), b},
				exposures: []interval{{20 * ms, 30 * ms}}},
			check: func(t *testing.T, f figures) {
				want(t, "EmptyLost", f.EmptyLost, 1)
				want(t, "EmptyNoticedFirst", f.EmptyNoticedFirst, 0)
			},
		},
		{
			// Keys vanished from a's majority while it held: b may take the lock.
			name: "overlap right after keys vanished from a majority",
			h: history{sections: []section{a, with(b, func(s *section) { s.Start = 40 * ms })},
				vanishes: []vanish{{interval: interval{20 * ms, 21 * ms}, Majority: true, Breaking: true}}},
			check: func(t *testing.T, f figures) {
				want(t, "OverlapsVanished", f.OverlapsVanished, 1)
				want(t, "Overlaps", f.Overlaps, 0)
			},
		},
		{
			// Keys vanished from a minority and left a's value on a
			// majority: nothing excuses the overlap.
			name: "overlap after keys vanished, a majority left",
			h: history{sections: []section{a, with(b, func(s *section) { s.Start = 40 * ms })},
				vanishes: []vanish{{interval: interval{20 * ms, 21 * ms}}}},
			violations: []string{"overlap: section 1"},
		},
		{
			// Keys vanishing early leave the fence counters intact: a
			// lower token is never excused by it.
			name: "token regression after keys vanished",
			h: history{sections: []section{a, {ID: 3, Worker: "c", Token: 3, AcqStart: 20 * ms, Start: 60 * ms, LastHeld: 70 * ms}},
				vanishes: []vanish{{interval: interval{15 * ms, 16 * ms}, Majority: true, Breaking: true}}},
			violations: []string{"token regression: section 3"},
		},
		{
			name:       "token given twice after keys vanished",
			h:          history{sections: []section{a, with(b, func(s *section) { s.Token = 64 })}, vanishes: []vanish{{interval: interval{20 * ms, 21 * ms}, Majority: true, Breaking: true}}},
			violations: []string{"token 64 given to 2 leases"},
		},
		{
			// c began acquiring after a's Acquire returned, yet got a lower token.
			name:       "token regression",
			h:          history{sections: []section{a, {ID: 3, Worker: "c", Token: 3, AcqStart: 20 * ms, Start: 60 * ms, LastHeld: 70 * ms}}},
			violations: []string{"token regression: section 3"},
			check:      func(t *testing.T, f figures) { want(t, "Regressions", f.Regressions, 1) },
		},
		{
			// c's token went backwards after a counter loss: the store
			// refuses its write though c holds the lease.
			name: "write refused for a token gone backwards",
			h: history{sections: []section{a, {ID: 3, Worker: "c", Token: 3, AcqStart: 20 * ms, Start: 60 * ms, LastHeld: 70 * ms}},
				writes: []write{{Section: 1, Token: 64, Checked: 10 * ms, Received: 11 * ms, Accepted: true}, {Section: 3, Token: 3, Checked: 60 * ms, Received: 61 * ms}},
				losses: []int64{15 * ms}},
			check: func(t *testing.T, f figures) {
				want(t, "BackwardsRejected", f.BackwardsRejected, 1)
				want(t, "LateRejected", f.LateRejected, 0)
			},
		},
		{
			name: "token regression after counters were lost",
			h: history{sections: []section{a, {ID: 3, Worker: "c", Token: 3, AcqStart: 20 * ms, Start: 60 * ms, LastHeld: 70 * ms}},
				losses: []int64{15 * ms}},
			check: func(t *testing.T, f figures) { want(t, "RegressionsOK", f.RegressionsOK, 1) },
		},
		{
			// c began acquiring before a master lost its counters, but
			// its Acquire returned after: no promise.
			name: "token regression, acquired across a counter loss",
			h: history{sections: []section{a, {ID: 3, Worker: "c", Token: 3, AcqStart: 20 * ms, Start: 3000 * ms, LastHeld: 3010 * ms}},
				losses: []int64{2000 * ms}},
			check: func(t *testing.T, f figures) { want(t, "RegressionsOK", f.RegressionsOK, 1) },
		},
		{
			name:       "token given twice",
			h:          history{sections: []section{a, with(b, func(s *section) { s.Token = 64; s.AcqStart = 5 * ms })}},
			violations: []string{"token 64 given to 2 leases"},
		},
		{
			// Counters lost before a's Acquire began: a's token was fenced
			// on a majority after, and c's majority meets it.
			name: "token regression, counters lost before both",
			h: history{sections: []section{with(a, func(s *section) { s.AcqStart = 8 * ms }), {ID: 3, Worker: "c", Token: 3, AcqStart: 20 * ms, Start: 60 * ms, LastHeld: 70 * ms}},
				losses: []int64{5 * ms}},
			violations: []string{"token regression: section 3"},
		},
		{
			// Counters lost later in the run excuse nothing before.
			name: "token given twice before counters were lost",
			h: history{sections: []section{a, with(b, func(s *section) { s.Token = 64; s.AcqStart = 5 * ms })},
				losses: []int64{2000 * ms}},
			violations: []string{"token 64 given to 2 leases"},
		},
		{
			name: "token given twice after counters were lost",
			h: history{sections: []section{a, with(b, func(s *section) { s.Token = 64; s.AcqStart = 5 * ms })},
				losses: []int64{55 * ms}},
			check: func(t *testing.T, f figures) { want(t, "Duplicates", f.Duplicates, 1) },
		},
		{
			// a's write checked at 20ms, its process stopped 30ms..1.5s;
			// b acquired meanwhile and wrote first.
			name: "stale write accepted",
			h: history{
				sections: []section{with(a, func(s *section) { s.Proc = 1; s.Token = 192 }), with(b, func(s *section) { s.AcqStart = 1100 * ms; s.Start = 1200 * ms; s.LastHeld = 1300 * ms })},
				writes: []write{
					{Section: 2, Token: 128, Checked: 1200 * ms, Received: 1201 * ms, Accepted: true},
					{Section: 1, Proc: 1, Token: 192, Checked: 20 * ms, Received: 1600 * ms, Accepted: true},
				},
				pauses: map[int][]interval{1: {{30 * ms, 1500 * ms}}},
			},
			// The regression (b got 128 after a's 192) shows up too.
			violations: []string{"token regression", "stale write accepted: section 1"},
			check: func(t *testing.T, f figures) {
				want(t, "Stale", f.Stale, 1)
				want(t, "StaleMust", f.StaleMust, 1)
			},
		},
		{
			name: "stale write rejected",
			h: history{
				sections: []section{with(a, func(s *section) { s.Proc = 1 }), with(b, func(s *section) { s.AcqStart = 1100 * ms; s.Start = 1200 * ms; s.LastHeld = 1300 * ms })},
				writes: []write{
					{Section: 2, Token: 128, Checked: 1200 * ms, Received: 1201 * ms, Accepted: true},
					{Section: 1, Proc: 1, Token: 64, Checked: 20 * ms, Received: 1600 * ms},
				},
				pauses: map[int][]interval{1: {{30 * ms, 1500 * ms}}},
			},
			check: func(t *testing.T, f figures) {
				want(t, "StaleRejected", f.StaleRejected, 1)
				want(t, "LateRejected", f.LateRejected, 0)
			},
		},
		{
			name:       "Err nil after a pause",
			h:          history{sections: []section{with(a, func(s *section) { s.Violation = "Lease.Err returned nil" })}},
			violations: []string{"Lease.Err returned nil"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.h.ttl = ttl
			f := analyze(tt.h)
			if len(f.Violations) != len(tt.violations) {
				t.Fatalf("violations: got %q; want %d matching %q", f.Violations, len(tt.violations), tt.violations)
			}
			for i, v := range tt.violations {
				if !strings.Contains(f.Violations[i], v) {
					t.Errorf("violation %d: got %q; want it to contain %q", i, f.Violations[i], v)
				}
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func with(s section, f func(*section)) section {
	f(&s)
	return s
}

func want(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %d; want %d", what, got, want)
	}
}

// A seed gives the same plan every time, and the plan keeps its budgets,
// on an odd and an even number of masters.
func TestPlanFaults(t *testing.T) {
	const d = 2 * time.Minute
	for _, n := range []int{5, 4} {
		for _, volatile := range []bool{false, true} {
			p1 := planFaults(42, d, n, 4, 2, 2, time.Second, volatile)
			p2 := planFaults(42, d, n, 4, 2, 2, time.Second, volatile)
			if len(p1) == 0 || len(p1) != len(p2) {
				t.Fatalf("%d masters, volatile %v: plans of %d and %d faults; want the same, non-empty", n, volatile, len(p1), len(p2))
			}
			for i := range p1 {
				if p1[i].String() != p2[i].String() {
					t.Fatalf("%d masters, volatile %v: fault %d: %s then %s; want the same plan from the same seed", n, volatile, i, p1[i], p2[i])
				}
			}
			kinds := make(map[string]int)
			quorum := n/2 + 1
			// At any fault's start, the master faults in progress (not
			// counting a majority kill, which runs alone) are a minority.
			for _, f := range p1 {
				kinds[f.Kind]++
				if f.At+f.For+f.Hold > d-3*time.Second {
					t.Errorf("fault %s ends in the calm last 3s", f)
				}
				busy := 0
				for _, g := range p1 {
					if isMasterFault(g.Kind) && g.Kind != faultKillMajority && g.At <= f.At && f.At < g.At+g.For {
						busy++
						// Keys vanish only on masters that are up.
						if (f.Kind == faultVanishMinority || f.Kind == faultVanishMajority) && slices.Contains(f.Masters, g.Masters[0]) {
							t.Errorf("%s on a master that %s took down", f, g)
						}
					}
				}
				if busy > n-quorum {
					t.Errorf("at %v: %d masters faulted at once; want at most %d", f.At, busy, n-quorum)
				}
				switch {
				case f.Kind == faultKillMajority && !volatile:
					t.Errorf("persistent plan has %s", f)
				case f.Kind == faultVanishMinority && (len(f.Masters) == 0 || len(f.Masters) >= quorum):
					t.Errorf("%s: not a minority of %d", f, n)
				case f.Kind == faultVanishMajority && len(f.Masters) < quorum:
					t.Errorf("%s: not a majority of %d", f, n)
				case f.Kind == faultLate && f.Client >= 2:
					t.Errorf("%s: client %d has no LateDialer", f, f.Client)
				}
			}
			for _, k := range []string{faultVanishMinority, faultVanishMajority, faultLate} {
				if kinds[k] == 0 {
					t.Errorf("%d masters, volatile %v: no %s in a plan of %d faults", n, volatile, k, len(p1))
				}
			}
		}
	}
}

func isMasterFault(k string) bool {
	switch k {
	case faultKill, faultKillEmpty, faultKillDelayed, faultKillMajority, faultPauseMaster:
		return true
	}
	return false
}
