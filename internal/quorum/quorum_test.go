package quorum

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMajority(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{1, 1}, {2, 2}, {3, 2}, {4, 3}, {5, 3}, {7, 4}} {
		assert.Equal(t, tc.want, Majority(tc.n), "Majority(%d)", tc.n)
		// Two majorities must always intersect.
		assert.Greater(t, 2*Majority(tc.n), tc.n, "two majorities of %d masters need not intersect", tc.n)
	}
}

func TestValidity(t *testing.T) {
	for _, tc := range []struct {
		ttl, elapsed time.Duration
		want         time.Duration
	}{
		{10 * time.Second, 0, 10*time.Second - 102*time.Millisecond},
		{10 * time.Second, 50 * time.Millisecond, 10*time.Second - 152*time.Millisecond},
		{time.Second, time.Second, -12 * time.Millisecond},
		{100 * time.Millisecond, 0, 97 * time.Millisecond},
	} {
		assert.Equal(t, tc.want, Validity(tc.ttl, tc.elapsed, 0.01), "Validity(%v, %v)", tc.ttl, tc.elapsed)
	}
}
