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
