package script

import (
	"strings"
	"testing"

	"github.com/distlock/distlock/internal/redistest"
)

// acquire.lua's ARGV[6], a local handoff: a key that holds the value a
// Client has just released counts as free, and only that value does.
func TestAcquireReplacesReleasedValue(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := func(args ...string) string {
		t.Helper()
		r, err := s.Do(args...)
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args[:1], " "), err)
		}
		return r
	}
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
