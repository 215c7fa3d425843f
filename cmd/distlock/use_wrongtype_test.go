package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestUseWrongTypeNotUnreachable: found by the use tester. Another
// program made the lock key a list (RPUSH) on masters 0 and 1. Every
// master answers; two refuse with WRONGTYPE. An operator reading the
// output must not be sent to look for a network fault:
//
//   - status showed those masters as "unreachable" (STATE column), and
//     --json says reachable: false;
//   - run said "1 of 3 masters reachable, 2 needed", the line it prints
//     when masters are down.
//
// Expected: a state such as "wrong type" (the verdict "cannot tell",
// exit 2, is right), and run saying that 2 masters refused (WRONGTYPE),
// not that they are unreachable.
//
// Proposed fix: in cmd/distlock/status.go give a master whose answer was
// a Redis error reply (rueidis.IsRedisErr) its own state ("error") and
// keep reachable true; in run's not-acquired message count masters that
// answered with an error as reachable-but-refused ("2 of 3 masters
// refused: WRONGTYPE ...").
func TestUseWrongTypeNotUnreachable(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	for _, s := range servers[:2] {
		if _, err := s.Do("RPUSH", "distlock:wt", "a"); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, nodes, "status", "wt")
	r.want(t, 2)
	if strings.Contains(r.stdout, "unreachable") {
		t.Errorf("status calls masters that answered WRONGTYPE unreachable:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "cannot tell: 2 of 3 masters answered with an error, 1 with a reading") {
		t.Errorf("status's verdict does not say that 2 masters answered with an error:\n%s", r.stdout)
	}
	// Every master WRONGTYPE: no reading at all, not "the masters disagree".
	if _, err := servers[2].Do("RPUSH", "distlock:wt", "a"); err != nil {
		t.Fatal(err)
	}
	r = run(t, nodes, "status", "wt")
	r.want(t, 2)
	if strings.Contains(r.stdout, "disagree") || !strings.Contains(r.stdout, "3 of 3 masters answered with an error, 0 with a reading") {
		t.Errorf("status with every master answering WRONGTYPE:\n%s", r.stdout)
	}
	// run decides once 2 errors put a majority out of reach: the third
	// master may not have been waited for, and is not counted as having
	// answered ("3 of 3 masters answered, 2 of them with an error" before).
	r = run(t, nodes, "run", "-n", "wt", "--", "true")
	r.want(t, 123)
	if m := regexp.MustCompile(`(\d) of 3 masters answered, (\d) of them with an error`).FindStringSubmatch(r.stderr); m == nil || m[1] != m[2] {
		t.Errorf("run with every master answering WRONGTYPE: want as many masters answered as answered with an error:\n%s", r.stderr)
	}
	if _, err := servers[2].Do("DEL", "distlock:wt"); err != nil {
		t.Fatal(err)
	}
	r = run(t, nodes, "run", "-n", "wt", "--", "true")
	r.want(t, 123)
	if strings.Contains(r.stderr, "1 of 3 masters reachable") {
		t.Errorf("run calls masters that answered WRONGTYPE unreachable:\n%s", r.stderr)
	}
	// One master down, one WRONGTYPE, one free: the verdict counts all three.
	servers[1].Kill()
	r = run(t, nodes, "status", "wt")
	r.want(t, 2)
	if !strings.Contains(r.stdout, "cannot tell: 1 of 3 masters answered with an error, 1 with a reading, 1 not at all") {
		t.Errorf("status with one master down, one WRONGTYPE:\n%s", r.stdout)
	}
}
