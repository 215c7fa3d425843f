package main

import (
	"regexp"
	"testing"
)

// TestOp2MasterNumbering: distlock numbers the masters of one --nodes
// list two ways. A duplicate or an empty entry is counted from 1
// ("masters 2 and 3 (...) are the same server", "entry 3 of ... is
// empty"), but a bad URL in that same third place is "Config.Nodes[2]",
// and run's and status's master errors say "master 2: <third URL>".
// An operator told "master 1" fixes the first line of the nodes file
// when the second is meant. Whatever the base, the third entry should
// carry one number in every message.
func TestOp2MasterNumbering(t *testing.T) {
	a, b := "redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"
	dup := run(t, nil, "status", "--nodes", a+","+b+",localhost:2", "job")
	m := regexp.MustCompile(`masters (\d+) and (\d+)`).FindStringSubmatch(dup.stderr)
	if m == nil {
		t.Fatalf("duplicate: %s", dup.stderr)
	}
	third := m[2]
	bad := run(t, nil, "status", "--nodes", a+","+b+",redis://127.0.0.1:3/0?protocol=9", "job")
	if !regexp.MustCompile(`(Nodes\[|master |entry )` + third + `\b`).MatchString(bad.stderr) {
		t.Errorf("the third entry is number %s for a duplicate (%q) but not for a bad URL: %s", third, dup.stderr, bad.stderr)
	}
	down := run(t, nil, "run", "-n", "--nodes", a+","+b+",redis://127.0.0.1:3/0", "job", "--", "true")
	if !regexp.MustCompile(`master ` + third + `(: | \()redis://127\.0\.0\.1:3/0`).MatchString(down.stderr) {
		t.Errorf("the third entry is number %s for a duplicate but not in run's master errors: %s", third, down.stderr)
	}
}
