package quorum

import (
	"testing"
	"time"
)

func TestMajority(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{1, 1}, {2, 2}, {3, 2}, {4, 3}, {5, 3}, {7, 4}} {
		if got := Majority(tc.n); got != tc.want {
			t.Errorf("Majority(%d) = %d; want %d", tc.n, got, tc.want)
		}
		// Two majorities must always intersect.
		if 2*Majority(tc.n) <= tc.n {
			t.Errorf("two majorities of %d masters need not intersect", tc.n)
		}
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
		if got := Validity(tc.ttl, tc.elapsed, 0.01); got != tc.want {
			t.Errorf("Validity(%v, %v) = %v; want %v", tc.ttl, tc.elapsed, got, tc.want)
		}
	}
}
