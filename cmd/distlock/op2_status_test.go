package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/distlock/distlock/internal/redistest"
)

// TestOp2StatusRefusingMastersUnreachable: masters that answer and
// refuse (WRONGPASS: the password in the URL is wrong) are "error" in
// status's table and "reachable": true in --json when one master takes
// the connection; when none does, the same masters are "reachable":
// false and the error says "no master reachable", though every master
// answered. run counts them as answering ("3 of 3 masters answered, 2 of
// them with an error").
func TestOp2StatusRefusingMastersUnreachable(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{Args: []string{"--requirepass", "right-one"}})
	var wrong []string
	for _, n := range redistest.URLs(servers) {
		wrong = append(wrong, strings.Replace(n, "redis://", "redis://:wrong-one@", 1))
	}
	r := run(t, wrong, "status", "--json", "job")
	if r.code != 2 {
		t.Errorf("exit %d; want 2", r.code)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	for i, m := range st.Masters {
		if !m.Reachable {
			t.Errorf("--json master %d: reachable false; it answered (%s)", i, m.Error)
		}
	}
	if strings.Contains(st.Error, "no master reachable") || strings.Contains(r.stderr, "no master reachable") {
		t.Errorf("error says no master reachable; every master answered WRONGPASS: %s", r.stderr)
	}
}
