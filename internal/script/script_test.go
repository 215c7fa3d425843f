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
		replaces := ""
		if len(extra) > 0 {
			replaces = extra[0]
		}
		return do("EVAL", acquireSrc, "6", "k", "fence", "wait", "lapse", "tomb", "left", value, "10000", "", "1", "1000", replaces, value)
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
	if r := do("EVAL", releaseSrc, "1", "k", "old"); r != "-1" {
		t.Fatalf("release of the old value after the handoff: got %q; want 0", r)
	}
	if v := do("GET", "k"); v != "new" {
		t.Fatalf("key holds %q after the old release; want new", v)
	}

	// ARGV[8]: taking over the released lease's key draws a counter above
	// the one in that lease's token, however low this master's counter was
	// (its write-back not arrived): TestAdv18ReleaseOvertakesWriteBack.
	do("SET", "k", "old2", "PX", "10000")
	do("SET", "fence", "3")
	r := do("EVAL", acquireSrc, "6", "k", "fence", "wait", "lapse", "tomb", "left", "new2", "10000", "", "0", "1000", "old2", "", "100")
	if r != "1\n101" {
		t.Fatalf("acquire taking over a released lease of counter 100, counter here 3: got %q; want granted at 101", r)
	}
	// A free key owes nothing to ARGV[8]: the release there raised it.
	do("DEL", "k")
	r = do("EVAL", acquireSrc, "6", "k", "fence", "wait", "lapse", "tomb", "left", "new3", "10000", "", "0", "1000", "old3", "", "500")
	if r != "1\n102" {
		t.Fatalf("acquire of a free key with ARGV[8] 500: got %q; want granted at 102", r)
	}
}

// handoff.lua pushes the key's expiry out and draws one counter only where
// the key holds the caller's value, and does nothing while another waiter
// is first in line (lapsed ones do not count) or, on master 0, holds the
// key there.
func TestHandoffScript(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	handoff := func(value, master0, waiter string) string {
		return do("EVAL", handoffSrc, "5", "k", "fence", "wait", "lapse", "tomb", value, "20000", master0, waiter, "next")
	}
	do("SET", "fence", "5")
	if r := handoff("v", "1", ""); r != "0\n0" {
		t.Fatalf("handoff on a free key: got %q; want nothing drawn", r)
	}
	if v := do("EXISTS", "k"); v != "0" {
		t.Fatal("handoff on a free key created it")
	}
	do("SET", "k", "v", "PX", "1000")
	if r := handoff("other", "0", ""); r != "0\n0" {
		t.Fatalf("handoff by a value the key does not hold: got %q; want nothing drawn", r)
	}
	if r := handoff("v", "0", ""); r != "6\n0" {
		t.Fatalf("handoff: got %q; want the counter raised by one (6)", r)
	}
	if v, ttl := do("GET", "k"), do("PTTL", "k"); v != "next" || len(ttl) != 5 {
		t.Fatalf("after a handoff the key holds %q with PTTL %s; want next, about 20000", v, ttl)
	}
	// A tombstone for the next value (the handoff was abandoned and
	// cleaned up): a late handoff does nothing.
	do("SET", "k", "v", "PX", "10000")
	do("SET", "tomb", "1", "PX", "10000")
	if r := handoff("v", "0", ""); r != "0\n0" {
		t.Fatalf("handoff with the next value's tombstone: got %q; want nothing done", r)
	}
	if v := do("GET", "k"); v != "v" {
		t.Fatalf("late handoff changed the key to %q", v)
	}
	do("DEL", "tomb")
	do("SET", "fence", "6")
	// Another Client's waiter first in line: no master hands over (each
	// keeps a line: one that cannot reach master 0 waits too).
	do("ZADD", "wait", "1", "w")
	do("ZADD", "lapse", "99999999999999", "w")
	if r := handoff("v", "1", ""); r != "0\n1" {
		t.Fatalf("handoff on master 0 with a waiter first: got %q; want {0, 1}", r)
	}
	if r := handoff("v", "0", ""); r != "0\n1" {
		t.Fatalf("handoff on another master with a waiter first: got %q; want {0, 1}", r)
	}
	if v := do("GET", "k"); v != "v" {
		t.Fatalf("refused handoff changed the key to %q", v)
	}
	do("SET", "fence", "7")
	// The holder's own waiter id first in line does not count; nor does a
	// waiter whose registration lapsed.
	do("ZADD", "wait", "0", "mine")
	if r := handoff("v", "1", "mine"); r != "8\n0" {
		t.Fatalf("handoff on master 0 with the holder's own id first: got %q; want 8", r)
	}
	do("SET", "k", "v", "PX", "10000")
	do("ZREM", "wait", "mine")
	do("ZADD", "lapse", "1", "w")
	if r := handoff("v", "1", ""); r != "9\n0" {
		t.Fatalf("handoff on master 0 with a lapsed waiter: got %q; want 9", r)
	}
	if n := do("ZCARD", "wait"); n != "0" {
		t.Fatalf("lapsed waiter still in line (%s entries)", n)
	}
	// Master 0's key held by another value (a waiter that won the
	// tie-break there): master 0 does nothing; on another master that is
	// simply a key the caller does not hold.
	do("SET", "k", "w", "PX", "10000")
	if r := handoff("v", "1", ""); r != "0\n1" {
		t.Fatalf("handoff on master 0 holding another value: got %q; want {0, 1}", r)
	}
	if r := handoff("v", "0", ""); r != "0\n0" {
		t.Fatalf("handoff on another master holding another value: got %q; want nothing drawn", r)
	}
	if v := do("GET", "k"); v != "w" {
		t.Fatalf("handoff changed another value's key to %q", v)
	}
}

// release.lua tells a deleted key from a gone one from another value's.
func TestReleaseScript(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	if r := do("EVAL", releaseSrc, "1", "k", "v"); r != "0" {
		t.Fatalf("release of a gone key: got %q; want 0", r)
	}
	do("SET", "k", "other")
	if r := do("EVAL", releaseSrc, "1", "k", "v"); r != "-1" {
		t.Fatalf("release of another value's key: got %q; want -1", r)
	}
	do("SET", "k", "v")
	if r := do("EVAL", releaseSrc, "1", "k", "v"); r != "1" {
		t.Fatalf("release of the key: got %q; want 1", r)
	}
	if v := do("EXISTS", "k"); v != "0" {
		t.Fatal("key still there")
	}
}

// acquire.lua keeps a waiter's place under its waiter id, not its value,
// and grants a free key on master 0 to the first in line with any value.
func TestAcquireWaiterID(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	acquire := func(value, waiter string) string {
		return do("EVAL", acquireSrc, "6", "k", "fence", "wait", "lapse", "tomb", "left", value, "10000", "", "1", "1000", "", waiter)
	}
	do("SET", "k", "holder", "PX", "10000")
	if r := acquire("v1", "w1"); !strings.HasPrefix(r, "0\n") {
		t.Fatalf("acquire of a held key: got %q; want refused", r)
	}
	if r := acquire("v2", "w2"); !strings.HasPrefix(r, "0\n") {
		t.Fatalf("acquire of a held key: got %q; want refused", r)
	}
	if got := do("ZRANGE", "wait", "0", "-1"); got != "w1\nw2" {
		t.Fatalf("waiting list %q; want the waiter ids in order of arrival", got)
	}
	do("DEL", "k")
	if r := acquire("v3", "w2"); !strings.HasPrefix(r, "0\n") {
		t.Fatalf("second in line, free key: got %q; want refused (w1 goes first)", r)
	}
	if r := acquire("v4", "w1"); !strings.HasPrefix(r, "1\n") {
		t.Fatalf("first in line with a new value: got %q; want granted", r)
	}
	if v := do("GET", "k"); v != "v4" {
		t.Fatalf("key holds %q; want v4", v)
	}
}

// release.lua with a tombstone (a bury) deletes the attempt's key if it holds the value, and leaves a
// tombstone that makes acquire.lua refuse that value when it arrives late.
func TestBuryRefusesLateAcquire(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	acquire := func(value string) string {
		return do("EVAL", acquireSrc, "6", "k", "fence", "wait", "lapse", "tomb:"+value, "left", value, "10000", "", "0", "1000", "", "")
	}
	if r := do("EVAL", releaseSrc, "3", "k", "fence", "tomb:v", "v", "", "0", "60000"); r != "0" {
		t.Fatalf("bury of a value never set: got %q; want 0", r)
	}
	if r := acquire("v"); !strings.HasPrefix(r, "0\n") {
		t.Fatalf("acquire arriving after bury: got %q; want refused", r)
	}
	if v := do("EXISTS", "k"); v != "0" {
		t.Fatal("a late acquire set the key")
	}
	if r := acquire("w"); !strings.HasPrefix(r, "1\n") {
		t.Fatalf("acquire of another value: got %q; want granted", r)
	}
	if r := do("EVAL", releaseSrc, "3", "k", "fence", "tomb:w", "w", "", "0", "60000"); r != "1" {
		t.Fatalf("bury of a value the key holds: got %q; want 1 (deleted)", r)
	}
	if v := do("EXISTS", "k"); v != "0" {
		t.Fatal("bury left the key")
	}
}

// acquire.lua asks for its tombstone (KEYS[5]) and the waiting list
// (KEYS[3]) in one EXISTS: a tombstone refuses the value whether or not a
// list exists, touching neither the key nor the list, and a list without
// a tombstone is still read (its first waiter goes first).
func TestTombstoneWithWaitingList(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	acquire := func(value, waiter string) string {
		return do("EVAL", acquireSrc, "6", "k", "fence", "wait", "lapse", "tomb:"+value, "left", value, "10000", "", "1", "1000", "", waiter)
	}
	do("SET", "k", "holder", "PX", "10000")
	if r := acquire("v1", "w1"); !strings.HasPrefix(r, "0\n") {
		t.Fatalf("acquire of a held key: got %q; want refused", r)
	}
	do("DEL", "k")
	do("SET", "tomb:v2", "1", "PX", "10000")
	if r := acquire("v2", "w2"); r != "0\n0\n0\n0\n0" {
		t.Fatalf("buried value with a waiting list: got %q; want {0, 0, 0, 0, 0}", r)
	}
	if got := do("ZRANGE", "wait", "0", "-1"); got != "w1" {
		t.Fatalf("waiting list %q after a buried acquire; want w1 alone", got)
	}
	if v := do("EXISTS", "k"); v != "0" {
		t.Fatal("a buried acquire set the key")
	}
	if r := acquire("v3", "w2"); !strings.HasPrefix(r, "0\n0\n1\n") {
		t.Fatalf("free key, w1 first in line: got %q; want refused, behind", r)
	}
	if r := acquire("v4", "w1"); !strings.HasPrefix(r, "1\n") {
		t.Fatalf("first in line: got %q; want granted", r)
	}
}

// release.lua raises the fence counter (KEYS[2]) to the released lease's
// counter (ARGV[3]) whatever the key holds, never lowers it, and leaves a
// counter that is not a number, or not a string, alone.
func TestReleaseRaisesCounter(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	release := func(value, counter string) string {
		return do("EVAL", releaseSrc, "2", "k", "fence", value, "", counter)
	}
	do("SET", "k", "v")
	do("SET", "fence", "5")
	if r := release("v", "100"); r != "1" {
		t.Fatalf("release: got %q; want 1", r)
	}
	if c := do("GET", "fence"); c != "100" {
		t.Fatalf("counter after a release of counter 100 over 5: %q; want 100", c)
	}
	if r := release("v", "50"); r != "0" {
		t.Fatalf("release of a gone key: got %q; want 0", r)
	}
	if c := do("GET", "fence"); c != "100" {
		t.Fatalf("counter after a release of counter 50 over 100: %q; want 100 (never lowered)", c)
	}
	do("SET", "k", "other")
	if r := release("v", "300"); r != "-1" {
		t.Fatalf("release of another value's key: got %q; want -1", r)
	}
	if c := do("GET", "fence"); c != "300" {
		t.Fatalf("counter after a release that found another value: %q; want 300", c)
	}
	if r := release("other", "0"); r != "1" {
		t.Fatalf("release of a failed attempt's value: got %q; want 1", r)
	}
	if c := do("GET", "fence"); c != "300" {
		t.Fatalf("counter after a release with counter 0: %q; want 300", c)
	}
	do("DEL", "fence")
	release("v", "7")
	if c := do("GET", "fence"); c != "7" {
		t.Fatalf("counter after a release where there was none: %q; want 7", c)
	}
	do("SET", "fence", "not a number")
	do("SET", "k", "v")
	if r := release("v", "9"); r != "1" {
		t.Fatalf("release beside a counter that is not a number: got %q; want 1", r)
	}
	if c := do("GET", "fence"); c != "not a number" {
		t.Fatalf("counter that was not a number: %q; want it left alone", c)
	}
	do("DEL", "fence")
	do("RPUSH", "fence", "x")
	do("SET", "k", "v")
	if r := release("v", "9"); r != "1" {
		t.Fatalf("release beside a counter of another type: got %q; want 1", r)
	}
}

// release.lua deletes either of two values given.
func TestReleaseAlsoValue(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	do("SET", "k", "next")
	if r := do("EVAL", releaseSrc, "1", "k", "old", ""); r != "-1" {
		t.Fatalf("release of old with no second value: got %q; want -1", r)
	}
	if r := do("EVAL", releaseSrc, "1", "k", "old", "next"); r != "1" {
		t.Fatalf("release of old or next: got %q; want 1", r)
	}
}

// acquire.lua ranks a waiter by the arrival time its caller carries
// (ARGV[3]) from the master that registered it first, so that masters
// agree on the order; it moves a place up to it, never down, and says the
// place in its reply.
func TestAcquirePlaceCarried(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	acquire := func(value, waiter, place string) []string {
		r := do("EVAL", acquireSrc, "6", "k", "fence", "wait", "lapse", "tomb", "left", value, "10000", place, "1", "1000", "", waiter)
		return strings.Split(r, "\n")
	}
	do("SET", "k", "holder", "PX", "10000")
	r := acquire("v1", "w1", "")
	if len(r) != 5 || r[0] != "0" || r[4] == "0" {
		t.Fatalf("first refusal: got %q; want {0, pttl, behind, lapse, place}", r)
	}
	own := r[4]
	// w2 arrives here later, but another master registered it at 1000:
	// it goes first here too.
	if r := acquire("v2", "w2", "1000"); r[4] != "1000" || r[2] != "0" {
		t.Fatalf("carried place: got %q; want place 1000, not behind", r)
	}
	if got := do("ZRANGE", "wait", "0", "-1"); got != "w2\nw1" {
		t.Fatalf("waiting list %q; want w2 (carried 1000) before w1", got)
	}
	// A later time carried does not move w1 back.
	if r := acquire("v3", "w1", "99999999999999"); r[4] != own || r[2] != "1" {
		t.Fatalf("later place carried: got %q; want place %s kept, behind", r, own)
	}
	// Free key: only the first in line is granted.
	do("DEL", "k")
	if r := acquire("v4", "w1", own); r[0] != "0" {
		t.Fatalf("second in line on a free key: got %q; want refused", r)
	}
	if r := acquire("v5", "w2", "1000"); r[0] != "1" {
		t.Fatalf("first in line on a free key: got %q; want granted", r)
	}
	// TryAcquire (no waiter id) joins no line and passes nobody.
	do("DEL", "k")
	if r := acquire("v6", "", ""); r[0] != "0" || r[4] != "0" {
		t.Fatalf("TryAcquire with waiters in line: got %q; want refused, no place", r)
	}
}

// leave.lua records a waiter that has finished, and acquire.lua never
// registers it again: its acquire, delivered late over a replaced
// connection, is refused without joining the line. A waiter that only
// steps out of line (too few masters answered it) can join again.
func TestLeaveFinishedIsNotRegisteredAgain(t *testing.T) {
	s := redistest.StartN(t, 1, redistest.Options{})[0]
	do := doer(t, s)
	acquire := func(value, waiter string) string {
		return do("EVAL", acquireSrc, "6", "k", "fence", "wait", "lapse", "tomb", "left", value, "10000", "", "1", "1000", "", waiter)
	}
	leave := func(waiter, done string) {
		do("EVAL", leaveSrc, "4", "wait", "lapse", "k", "left", waiter, done, "60000")
	}
	do("SET", "k", "holder", "PX", "10000")
	acquire("v1", "w")
	leave("w", "0") // steps out of line
	acquire("v2", "w")
	if got := do("ZRANGE", "wait", "0", "-1"); got != "w" {
		t.Fatalf("after stepping out, a new attempt: line %q; want w again", got)
	}
	leave("w", "1") // finished
	if got := do("ZRANGE", "wait", "0", "-1"); got != "" {
		t.Fatalf("after finishing: line %q; want empty", got)
	}
	if r := acquire("v3", "w"); !strings.HasPrefix(r, "0\n") {
		t.Fatalf("late acquire of a finished waiter: got %q; want refused", r)
	}
	if got := do("ZRANGE", "wait", "0", "-1"); got != "" {
		t.Fatalf("late acquire of a finished waiter registered it: line %q", got)
	}
	if ttl := do("PTTL", "left"); ttl == "-1" || ttl == "-2" {
		t.Fatalf("finished record PTTL %s; want it to expire", ttl)
	}
}
