package distlock

import "testing"

// foundWhere names the masters in order, and leaves out an empty list (a
// lost release said "gone on masters [1 0] and held by another value on
// masters []").
func TestFoundWhere(t *testing.T) {
	for _, tc := range []struct {
		gone, taken []int
		want        string
	}{
		{[]int{1, 0}, nil, "gone on masters 0, 1"},
		{nil, []int{2}, "held by another value on master 2"},
		{[]int{4}, []int{2, 0}, "gone on master 4 and held by another value on masters 0, 2"},
	} {
		if got := foundWhere(tc.gone, tc.taken); got != tc.want {
			t.Errorf("foundWhere(%v, %v) = %q; want %q", tc.gone, tc.taken, got, tc.want)
		}
	}
}
