package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestUseReviewFenceOutOfRange: found by the use tester. Another program
// set the fence counter distlock:fence:{hx7} (the slot of lock "x") to a
// number above 2^53 that Redis still reads as an integer. The library
// refuses to lease from it ("outside 1..2^53: fix or delete it"), but
// status shows it as a token without a word: fence<<6 overflows uint64,
// so 2^58 prints TOKEN 0, 1, 2 (as before any lease) and 2^63-1 prints
// 18446744073709551552; --json has no fence_error. And run, whose
// masters all answered, says "1 of 3 masters reachable" (the line for
// masters that are down) because that refusal is not a Redis error reply.
//
// Expected: status gives such a counter FenceErr ("unreadable", a
// fence_error in --json) as it does a non-number; run counts those
// masters as answered with an error.
func TestUseReviewFenceOutOfRange(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	for _, s := range servers {
		if _, err := s.Do("SET", "distlock:fence:{hx7}", "288230376151711744"); err != nil { // 2^58
			t.Fatal(err)
		}
	}
	r := run(t, nodes, "status", "--json", "x")
	r.want(t, 0)
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	for i, m := range st.Masters {
		if m.FenceErr == "" {
			t.Errorf("master %d: fence counter 2^58 shown as token %d, no fence_error", i, m.Token)
		}
	}
	r = run(t, nodes, "status", "x")
	if !strings.Contains(r.stdout, "unreadable") {
		t.Errorf("status shows a fence counter of 2^58 as a token:\n%s", r.stdout)
	}
	r = run(t, nodes, "run", "-n", "x", "--", "true")
	r.want(t, 123)
	if strings.Contains(r.stderr, "masters reachable") {
		t.Errorf("run calls masters that answered (fence counter out of range) unreachable:\n%s", r.stderr)
	}
}

// TestUseReviewPassNodesPrefix: run --pass-nodes gives the command the
// masters so that "a distlock inside reads the same ones", but not
// --prefix (there is no DISTLOCK_PREFIX): with --prefix app: the inner
// `distlock status NAME` reads distlock:NAME, not app:NAME, and says
// "free" (exit 0) while run holds the lock.
func TestUseReviewPassNodesPrefix(t *testing.T) {
	_, nodes := startMasters(t, 3)
	r := run(t, nil, "run", "--nodes", strings.Join(nodes, ","), "--prefix", "app:", "--pass-nodes", "pp", "--",
		"sh", "-c", binary+` status "$DISTLOCK_NAME"; echo "inner=$?"`)
	r.want(t, 0)
	if !strings.Contains(r.stdout, "inner=1") {
		t.Errorf("inside run --prefix app: --pass-nodes, status of the held lock:\n%s", r.stdout)
	}
}
