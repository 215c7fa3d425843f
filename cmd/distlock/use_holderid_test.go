package main

import (
	"strings"
	"testing"
)

// TestUseStatusForeignHolderSafe: found by the use tester. Another program
// set the lock key to "\x1b[31mX Y\nZ" on every master. status printed the
// value's first 8 bytes raw in the HOLDER column and the holder line: an
// ANSI escape reached the terminal (turning the table red), and the space
// split the column, so a script reading `MASTER STATE HOLDER TTL TOKEN`
// by fields got "X" as the TTL. Owner and metadata were already quoted
// (%q); the holder id was not. Fixed in holderID (status.go): bytes that
// are not printable ASCII, and spaces, are shown as \xNN.
func TestUseStatusForeignHolderSafe(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	for _, s := range servers {
		if _, err := s.Do("SET", "distlock:fh", "\x1b[31mX Y\nZ"); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, nodes, "status", "fh")
	r.want(t, 1)
	if strings.ContainsAny(r.stdout, "\x1b") {
		t.Errorf("status prints a raw escape from another program's value:\n%q", r.stdout)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	for _, l := range lines[2:] {
		if strings.HasPrefix(l, "redis://") {
			if f := strings.Fields(l); len(f) != 5 || f[3] != "none" {
				t.Errorf("table row does not split into 5 fields with TTL none: %q", l)
			}
		}
	}
	if !strings.Contains(r.stdout, `\x1b[31mX\x20Y`) {
		t.Errorf("holder id not shown escaped:\n%s", r.stdout)
	}
}
