package script

import (
	"strings"
	"testing"

	"github.com/distlock/distlock/internal/redistest"
)

// acquire.lua's ARGV[6], a local handoff: a key that holds the value a
// Client has just released counts as free, and only that value does.
// doer returns a function that runs a command on s and fails the test on
// an error.
func doer(t *testing.T, s *redistest.Server) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		r, err := s.Do(args...)
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args[:1], " "), err)
		}
		return r
	}
}

func TestAcquireReplacesReleasedValue(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	acquire := func(value string, extra ...string) string {
		args := append([]string{"EVAL", acquireSrc, "4", "k", "fence", "wait", "lapse", value, "10000", "1", "1", "1000"}, extra...)
		return do(args...)
	}
	do("SET", "k", "old", "PX", "10000")

	if r := acquire("new"); !strings.HasPrefix(r, "0\n") {
		t.Fatalf("acquire of a held key with no ARGV[6]: got %q; want refused", r)
	}
	if r := acquire("new", "other"); !strings.HasPrefix(r, "0\n") {
		t.Fatalf("acquire with ARGV[6] not the holder's value: got %q; want refused", r)
	}
	// The refused attempts joined master 0's waiting list: leave it, as a
	// handoff's waiter would be the one in line anyway.
	do("DEL", "wait", "lapse")
	if r := acquire("new", "old"); !strings.HasPrefix(r, "1\n") {
		t.Fatalf("acquire with ARGV[6] the holder's value: got %q; want granted", r)
	}
	if v := do("GET", "k"); v != "new" {
		t.Fatalf("key holds %q after the handoff; want new", v)
	}
	// The released lease's delete, arriving after, leaves the new holder.
	if r := do("EVAL", releaseSrc, "1", "k", "old"); r != "0" {
		t.Fatalf("release of the old value after the handoff: got %q; want 0", r)
	}
	if v := do("GET", "k"); v != "new" {
		t.Fatalf("key holds %q after the old release; want new", v)
	}
}

// draw.lua raises the fence counter by the block's size only where the key
// holds the caller's value, leaves the key as it was, and on master 0 draws
// nothing while another waiter is first in line (lapsed ones do not count)
// or holds the key there.
func TestDrawBlock(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	draw := func(value, master0 string) string {
		return do("EVAL", drawSrc, "4", "k", "fence", "wait", "lapse", value, master0, "16")
	}
	do("SET", "fence", "5")
	if r := draw("v", "1"); r != "0\n0" {
		t.Fatalf("draw on a free key: got %q; want nothing drawn", r)
	}
	do("SET", "k", "v", "PX", "10000")
	if r := draw("other", "0"); r != "0\n0" {
		t.Fatalf("draw by a value the key does not hold: got %q; want nothing drawn", r)
	}
	if r := draw("v", "0"); r != "21\n0" {
		t.Fatalf("draw: got %q; want the counter raised by 16 (21)", r)
	}
	if v, ttl := do("GET", "k"), do("PTTL", "k"); v != "v" || ttl == "-1" {
		t.Fatalf("after a draw the key holds %q with PTTL %s; want it untouched", v, ttl)
	}
	// Another Client's waiter first in line: master 0 draws nothing, the
	// others (which keep no line) still do.
	do("ZADD", "wait", "1", "w")
	do("ZADD", "lapse", "99999999999999", "w")
	if r := draw("v", "1"); r != "0\n1" {
		t.Fatalf("draw on master 0 with a waiter first: got %q; want {0, 1}", r)
	}
	if r := draw("v", "0"); r != "37\n0" {
		t.Fatalf("draw on another master: got %q; want 37", r)
	}
	// The holder's own value first in line does not count; nor does a
	// waiter whose registration lapsed.
	do("ZADD", "wait", "0", "v")
	if r := draw("v", "1"); r != "53\n0" {
		t.Fatalf("draw on master 0 with its own value first: got %q; want 53", r)
	}
	do("ZREM", "wait", "v")
	do("ZADD", "lapse", "1", "w")
	if r := draw("v", "1"); r != "69\n0" {
		t.Fatalf("draw on master 0 with a lapsed waiter: got %q; want 69", r)
	}
	if n := do("ZCARD", "wait"); n != "0" {
		t.Fatalf("lapsed waiter still in line (%s entries)", n)
	}
	// Master 0's key held by another value (a waiter that won the
	// tie-break there): master 0 draws nothing; on another master that is
	// simply a key the caller does not hold.
	do("SET", "k", "w", "PX", "10000")
	if r := draw("v", "1"); r != "0\n1" {
		t.Fatalf("draw on master 0 holding another value: got %q; want {0, 1}", r)
	}
	if r := draw("v", "0"); r != "0\n0" {
		t.Fatalf("draw on another master holding another value: got %q; want nothing drawn", r)
	}
	// Free on master 0 with no one in line: nothing drawn there, and no
	// reason to yield.
	do("DEL", "k")
	if r := draw("v", "1"); r != "0\n0" {
		t.Fatalf("draw on master 0 with a free key and no line: got %q; want {0, 0}", r)
	}
}
