package watch

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// step is one master's report at a time in ms. down: the master became
// unreachable. v "": free, how says how the value before went.
type step struct {
	at   int
	m    int
	v    string
	how  How
	down bool
}

// held, del, expired and down are shorthand for steps.
func held(at, m int, v string) step { return step{at: at, m: m, v: v} }
func del(at, m int) step            { return step{at: at, m: m, how: HowDeleted} }
func expired(at, m int) step        { return step{at: at, m: m, how: HowExpired} }
func gone(at, m int) step           { return step{at: at, m: m, how: HowUnknown} }
func down(at, m int) step           { return step{at: at, m: m, down: true} }

// free0 is every master of 3 read free as the watch begins.
var free0 = []step{gone(0, 0), gone(0, 1), gone(0, 2)}

func steps(groups ...[]step) []step { return slices.Concat(groups...) }

// TestState runs each case's reports through a State of 3 masters (a
// majority is 2) and compares the changes, each as "<step>: <kind>
// <value> <masters>", step being the report's index.
func TestState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string
	}{
		{
			name: "acquire and release",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"), held(10, 2, "V"),
				del(20, 0), del(20, 1), del(20, 2),
			}),
			want: []string{"4: acquired V 2", "7: released V 2"},
		},
		{
			// Issue 21 item 2: the watcher hears master 1 15 ms and master
			// 2 30 ms after master 0; a hold of 1 ms ends on master 0
			// before it begins on the others. Master 2, late, makes no
			// second hold.
			name: "masters at different speeds, 1 ms hold",
			steps: steps(free0, []step{
				held(100, 0, "V"), del(101, 0),
				held(115, 1, "V"), del(116, 1),
				held(130, 2, "V"), del(131, 2),
			}),
			want: []string{"5: acquired V 2", "6: released V 3"},
		},
		{
			// The late master's reports come after a new holder's.
			name: "late master, next holder already in",
			steps: steps(free0, []step{
				held(100, 0, "V"), held(100, 1, "V"), del(110, 0), del(110, 1),
				held(111, 0, "W"), held(111, 1, "W"),
				held(130, 2, "V"), del(131, 2), held(132, 2, "W"),
				del(200, 0), del(200, 1),
			}),
			want: []string{"4: acquired V 2", "6: released V 3", "8: acquired W 2", "13: released W 2"},
		},
		{
			// Issue 21 item 1: a waiter wins masters 1 and 2, yields to
			// the first in line (deletes its keys), and wins for real a
			// second later with the same value: two holds.
			name: "same value held again after its release",
			steps: steps(free0, []step{
				held(100, 1, "V"), held(100, 2, "V"), del(101, 1), del(101, 2),
				held(1100, 0, "V"), held(1100, 1, "V"), held(1100, 2, "V"),
				del(1200, 0), del(1200, 1), del(1200, 2),
			}),
			want: []string{"4: acquired V 2", "6: released V 3", "8: acquired V 2", "11: released V 2"},
		},
		{
			// The same within LagWindow, master 0 (not in the first hold)
			// reporting first: it may have been late with the first hold,
			// but once masters 1 and 2 hold the value anew it counts for
			// the new one.
			name: "same value held again at once",
			steps: steps(free0, []step{
				held(100, 1, "V"), held(100, 2, "V"), del(101, 1), del(101, 2),
				held(110, 0, "V"), held(110, 1, "V"),
				del(150, 0), del(150, 1),
			}),
			want: []string{"4: acquired V 2", "6: released V 3", "8: acquired V 2", "10: released V 3"},
		},
		{
			// An Acquire that kept the same value over failed attempts,
			// each winning one master, never held a majority: reports of
			// a value long gone do not add up.
			name: "failed attempts far apart do not add up",
			steps: steps(free0, []step{
				held(100, 0, "V"), del(101, 0),
				held(1100, 1, "V"), del(1101, 1),
			}),
			want: nil,
		},
		{
			// Issue 21 item 4: the holder is cut from masters 1 and 2; its
			// keys expire there, and its Client deletes master 0's.
			name: "lost lease expires",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"), held(10, 2, "V"),
				del(500, 0), expired(510, 1), expired(510, 2),
			}),
			want: []string{"4: acquired V 2", "8: expired V 3"},
		},
		{
			name: "bare majority released",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"),
				del(500, 0), del(501, 1),
			}),
			want: []string{"4: acquired V 2", "6: released V 3"},
		},
		{
			name: "bare majority, one delete, one expiry",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"),
				del(500, 0), expired(900, 1),
			}),
			want: []string{"4: acquired V 2", "6: expired V 3"},
		},
		{
			name: "released while one master unreachable",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"), held(10, 2, "V"),
				down(20, 0), del(30, 1), del(30, 2),
			}),
			want: []string{"4: acquired V 2", "8: released V 2"},
		},
		{
			// Nothing can be told while a majority is unreachable; reads
			// after they are back find the key gone before its expiry
			// (the caller passes HowDeleted).
			name: "released while a majority unreachable",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"), held(10, 2, "V"),
				down(20, 0), down(20, 1), del(30, 2), del(1000, 0),
			}),
			want: []string{"4: acquired V 2", "9: released V 2"},
		},
		{
			name:  "initial hold, free master read first",
			steps: []step{gone(0, 2), held(0, 0, "V"), held(0, 1, "V"), down(10, 0), held(20, 0, "V")},
			want:  []string{"2: initial V 2"},
		},
		{
			// A master restarted without its data finds the key gone:
			// no change; the others' expiry ends the hold, expired.
			name: "master restarted empty",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"), held(10, 2, "V"),
				down(20, 2), gone(30, 2), expired(2000, 0), expired(2000, 1),
			}),
			want: []string{"4: acquired V 2", "8: expired V 2"},
		},
		{
			name: "renewals are no change",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"), held(10, 2, "V"),
				held(400, 0, "V"), held(400, 1, "V"), held(400, 2, "V"),
			}),
			want: []string{"4: acquired V 2"},
		},
		{
			// A new holder on a majority ends the one before, even while
			// a master still says it holds the old value (two holds of a
			// majority cannot overlap; the older one is over).
			name: "new holder ends the old one",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"),
				held(20, 2, "W"), step{at: 30, m: 0, v: "W", how: HowExpired},
			}),
			want: []string{"4: acquired V 2", "6: expired V 2", "6: acquired W 2"},
		},
		{
			// Under contention: a waiter wins masters 1 and 2, yields, and
			// deletes its keys; the first in line wins master 1 as soon as
			// it is free there, before the waiter's delete on master 2 is
			// heard. The waiter's hold was released.
			name: "new holder before the last delete",
			steps: steps(free0, []step{
				held(10, 1, "V"), held(10, 2, "V"), held(10, 0, "W"),
				del(12, 1), held(13, 1, "W"), del(14, 2),
			}),
			want: []string{"4: acquired V 2", "7: released V 2", "7: acquired W 2"},
		},
		{
			// A value that adds up to a majority only over time (master 1
			// held it before the holder took it) does not end a holder
			// that stands on a majority now.
			name: "no cumulative majority against a standing holder",
			steps: steps(free0, []step{
				held(10, 1, "W"), del(11, 1),
				held(12, 1, "V"), held(12, 2, "V"),
				held(20, 0, "W"),
				del(40, 1), del(40, 2),
			}),
			want: []string{"6: acquired V 2", "9: released V 3"},
		},
		{
			// How an earlier hold went does not describe the next: the
			// first is released everywhere, the next held on masters 0
			// and 1 only, and expires.
			name: "earlier release not counted",
			steps: steps(free0, []step{
				held(10, 0, "V"), held(10, 1, "V"), held(10, 2, "V"), del(20, 0), del(20, 1), del(20, 2),
				held(1000, 0, "W"), held(1000, 1, "W"), expired(3000, 0), expired(3000, 1),
			}),
			want: []string{"4: acquired V 2", "7: released V 2", "10: acquired W 2", "11: expired W 2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState(3, 2)
			var got []string
			for i, st := range tc.steps {
				r := Report{Master: st.m, Known: !st.down, Value: st.v, How: st.how}
				for _, c := range s.Observe(r, int64(st.at)*int64(time.Millisecond)) {
					kind := map[Kind]string{Acquired: "acquired", Released: "released", Expired: "expired"}[c.Kind]
					if c.Initial {
						kind = "initial"
					}
					got = append(got, fmt.Sprintf("%d: %s %s %d", i, kind, c.Value, c.Masters))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q; want %q", got, tc.want)
			}
		})
	}
}
