package distlock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/distlock/distlock/internal/quorum"
)

// verdict.refused, without Redis: what a failed attempt tells the next,
// from acquire.lua's refusals {0, pttl, behind, lapse, place}.
func TestVerdictRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		place   int64 // carried in
		answers map[int][]int64
		wait    time.Duration
		atPlace int64
		behind  bool
	}{
		{"held, no line", 0, map[int][]int64{1: {0, 900, 0, 0, 0}, 2: {0, 800, 0, 0, 0}}, 800 * time.Millisecond, 0, false},
		{"held, pttl unknown", 0, map[int][]int64{1: {0, -1, 0, 0, 0}}, 0, 0, false},
		{"first in line here", 0, map[int][]int64{0: {0, 900, 0, 0, 1000}}, 900 * time.Millisecond, 1000, false},
		{"behind on master 0: sleep, wake at the lapse", 0, map[int][]int64{0: {0, 900, 1, 300, 1000}}, 300 * time.Millisecond, 1000, true},
		{"behind elsewhere only: not asleep", 0, map[int][]int64{1: {0, 0, 1, 200, 1000}}, 200 * time.Millisecond, 1000, false},
		{"free key behind a waiter: its lapse", 0, map[int][]int64{0: {0, 0, 1, 400, 1}}, 400 * time.Millisecond, 1, true},
		{"the earliest place wins", 0, map[int][]int64{0: {0, 900, 0, 0, 1500}, 1: {0, 900, 0, 0, 1200}, 2: {0, 900, 0, 0, 1300}}, 900 * time.Millisecond, 1200, false},
		{"a carried place is kept when earlier", 1100, map[int][]int64{1: {0, 900, 0, 0, 1200}}, 900 * time.Millisecond, 1100, false},
		{"not in a line (TryAcquire, or did not join)", 0, map[int][]int64{1: {0, 900, 1, 50, 0}}, 50 * time.Millisecond, 0, false},
		{"an old reply without a line", 0, map[int][]int64{0: {0, 700}}, 700 * time.Millisecond, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := verdict{place: tc.place}
			for node, v := range tc.answers {
				out.refused(node, v)
			}
			assert.Equal(t, tc.wait, out.wait, "wait")
			assert.Equal(t, tc.atPlace, out.place, "place")
			assert.Equal(t, tc.behind, out.behind, "behind")
		})
	}
}

// headRetry, without Redis: how the waiter that kept master 0's keys
// retries.
func TestHeadRetry(t *testing.T) {
	for _, tc := range []struct {
		n       int
		answers string // g: granted, r: refused, f: failed
		want    int
	}{
		{3, "grr", retryBackoff}, // a majority held elsewhere
		{3, "gr", retrySoon},     // split: 1 granted, 1 refused, 1 unknown
		{3, "grf", retrySoon},
		{3, "gff", retryAsOthers}, // too few answered
		{5, "grrff", retrySoon},
		{5, "grrrf", retryBackoff},
		{5, "ggrff", retrySoon},
	} {
		y := quorum.NewTally(tc.n)
		for _, a := range tc.answers {
			switch a {
			case 'g':
				y.Grant()
			case 'r':
				y.Refuse()
			case 'f':
				y.Fail()
			}
		}
		assert.Equal(t, tc.want, headRetry(y), "%q of %d: headRetry", tc.answers, tc.n)
	}
}

// hearMore stops reading answers only once what the attempt reports is
// final: won or not, locked or not (ErrLocked or ErrNoQuorum), and for a
// waiting Acquire whether it reached a majority. Every order of every
// mix of answers, for 1 to 7 masters. Without lossUnexplained (before
// TestTryAcquireHeldWithMasterDown) 933 cases failed, 4 of them with 3
// masters: ErrNoQuorum where all the answers say ErrLocked. With the
// first fix, which waited only while Reached, 28 did, all with an even
// number of masters.
func TestHearMoreStopsWhenFinal(t *testing.T) {
	for n := 1; n <= 7; n++ {
		total := 1
		for range n {
			total *= 3
		}
		for code := range total {
			answers := make([]int, n) // 0 grant, 1 refuse, 2 fail
			for i, c := 0, code; i < n; i, c = i+1, c/3 {
				answers[i] = c % 3
			}
			final := quorum.NewTally(n)
			for _, a := range answers {
				count(&final, a)
			}
			for _, keep := range []bool{false, true} {
				early, read := quorum.NewTally(n), 0
				for hearMore(early, keep) {
					count(&early, answers[read])
					read++
				}
				if early.Won() != final.Won() || early.Locked() != final.Locked() || keep && early.Reached() != final.Reached() {
					t.Errorf("%d masters, answers %v in that order, keep %v: stopped after %d with won %v locked %v reached %v; all answers say won %v locked %v reached %v",
						n, answers, keep, read, early.Won(), early.Locked(), early.Reached(), final.Won(), final.Locked(), final.Reached())
				}
			}
		}
	}
}

func count(t *quorum.Tally, answer int) {
	switch answer {
	case 0:
		t.Grant()
	case 1:
		t.Refuse()
	default:
		t.Fail()
	}
}

// A place learnt late wakes the waiter only while no attempt carries it
// or an earlier one (an adversarial read: a wake left from before the
// next attempt, or for a place later than the one it carries, cost an
// attempt that taught nothing).
func TestLatePlaceWakesOnlyForNews(t *testing.T) {
	woken := func(w *waiting) bool {
		select {
		case <-w.late.wake:
			return true
		default:
			return false
		}
	}
	newWaiting := func(place int64) *waiting {
		return &waiting{req: &request{}, t: &turn{}, waiter: "w", place: place, late: latePlaces{wake: make(chan struct{}, 1)}}
	}
	w := newWaiting(100)
	a1 := w.next()
	a1.late.take(50, 100, true)
	if a2 := w.next(); a2.place != 50 {
		t.Fatalf("next attempt carries %d; want the place learnt late, 50", a2.place)
	}
	if woken(w) {
		t.Error("woken for a place the next attempt carries already")
	}
	w = newWaiting(40)
	w.next().late.take(60, 100, true) // earlier than that attempt heard, not than it carried
	if woken(w) {
		t.Error("woken for 60 while the attempt carries 40")
	}
	w = newWaiting(100)
	w.next().late.take(50, 100, true)
	if !woken(w) {
		t.Error("not woken for 50 while the attempt carries 100 and master 0 put it behind")
	}
}
