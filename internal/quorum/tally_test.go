package quorum

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every branch of Tally, for 1, 3, 4 and 5 masters.
func TestTally(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		n                          int
		answers                    string // g: grant, r: refuse, f: fail
		won, lost, reached, locked bool
	}{
		{"one master, nothing yet", 1, "", false, false, true, false},
		{"one master granted", 1, "g", true, false, true, false},
		{"one master refused", 1, "r", false, true, true, true},
		{"one master failed", 1, "f", false, true, false, false},
		{"3: nothing yet", 3, "", false, false, true, false},
		{"3: one grant, undecided", 3, "g", false, false, true, false},
		{"3: majority granted", 3, "gg", true, false, true, false},
		{"3: one refusal, undecided", 3, "r", false, false, true, false},
		{"3: two refusals lose to a holder", 3, "rr", false, true, true, true},
		{"3: split vote is locked", 3, "grf", false, true, true, true},
		{"3: a refusal and a failure: no quorum", 3, "rf", false, true, true, false},
		{"3: two failures do not reach a majority", 3, "ff", false, true, false, false},
		{"3: grant then two failures", 3, "gff", false, true, false, false},
		{"3: one failure is spared", 3, "fg", false, false, true, false},
		{"4: two refusals decide it", 4, "rr", false, true, true, true},
		{"4: two grants are not a majority", 4, "gg", false, false, true, false},
		{"4: three grants are", 4, "ggg", true, false, true, false},
		{"4: two failures do not reach a majority", 4, "ff", false, true, false, false},
		{"5: two failures are spared", 5, "ffg", false, false, true, false},
		{"5: three refusals", 5, "rrr", false, true, true, true},
		{"5: won with a failure and a refusal", 5, "fgrgg", true, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := tallyOf(tc.n, tc.answers)
			assert.Equal(t, [4]bool{tc.won, tc.lost, tc.reached, tc.locked}, [4]bool{y.Won(), y.Lost(), y.Reached(), y.Locked()},
				"%q of %d: won, lost, reached, locked", tc.answers, tc.n)
			assert.Equal(t, tc.won || tc.lost, y.Decided(), "Decided")
			assert.Equal(t, tc.n-len(tc.answers), y.Pending(), "Pending")
		})
	}
}

// ReachKnown: whether Reached can still change.
func TestTallyReachKnown(t *testing.T) {
	for _, tc := range []struct {
		n       int
		answers string
		known   bool
	}{
		{3, "", false},   // all could still fail
		{3, "r", false},  // two still to answer: both may fail
		{3, "rr", true},  // one to answer: at most one failure
		{3, "rf", false}, // the last one decides it
		{3, "rff", true},
		{3, "ff", true},   // two failed: not reached, whatever comes
		{5, "rrf", false}, // two to answer could fail: 3 > 2
		{5, "rrfr", true},
		{5, "rf", false},
		{1, "", false},
		{1, "r", true},
	} {
		y := tallyOf(tc.n, tc.answers)
		assert.Equal(t, tc.known, y.ReachKnown(), "%q of %d", tc.answers, tc.n)
	}
}

// Outvoted counts refusals only: failures may still have granted.
func TestTallyOutvoted(t *testing.T) {
	for _, tc := range []struct {
		n        int
		answers  string // g: grant, r: refuse, f: fail
		outvoted bool
	}{
		{1, "", false},
		{1, "r", true},
		{1, "f", false},
		{3, "r", false},
		{3, "rr", true},
		{3, "grf", false},
		{3, "ff", false},
		{3, "frr", true},
		{4, "rr", true},
		{4, "rff", false},
		{5, "rr", false},
		{5, "rrg", false},
		{5, "rrr", true},
	} {
		y := tallyOf(tc.n, tc.answers)
		if y.Outvoted() != tc.outvoted {
			t.Errorf("%q of %d: Outvoted %v; want %v", tc.answers, tc.n, y.Outvoted(), tc.outvoted)
		}
	}
}

// tallyOf returns the Tally of n masters after answers, one letter each:
// g a grant, r a refusal, f a failure.
func tallyOf(n int, answers string) Tally {
	y := NewTally(n)
	for _, a := range answers {
		switch a {
		case 'g':
			y.Grant()
		case 'r':
			y.Refuse()
		case 'f':
			y.Fail()
		}
	}
	return y
}
