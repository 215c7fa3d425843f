package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsePasswordNeverPrinted: found by the use tester. docs/security.md:
// no password may appear in any output. Three paths in the command print
// a master list that redact/redactList cannot see into:
//
//   - the "entry N of %q is empty" usage error quotes the whole list
//     through redactList, which keeps an entry verbatim when url.Parse
//     refuses it (here a space in the password);
//   - the "masters i and j (...) are the same server" error does the same,
//     and url.Parse of the host:port form "user:pass@host:port" succeeds
//     with scheme "user" and no User, so it is printed verbatim too;
//   - --nodes-file cuts a line at '#' (a comment) before the entry is
//     parsed, so a password holding an unencoded '#' becomes
//     "redis://u:s3c", which has no '@' left, and redact prints the
//     password's first characters.
//
// Proposed fix: never print a user-supplied entry that did not parse;
// in redactList use config's redact (text-based, not url.Parse), and make
// redact hide everything after "scheme://user:" when there is no '@'
// either (or print only "entry N"); in readNodesFile take '#' as a comment
// only at the start of a line or after whitespace (a URL never holds an
// unencoded space), so "pa#ss" stays in the URL and is refused whole
// with the "percent-encode '#' as %23" message, redacted.
func TestUsePasswordNeverPrinted(t *testing.T) {
	const secret = "s3cretPW"
	dir := t.TempDir()
	file := filepath.Join(dir, "nodes")
	if err := os.WriteFile(file, []byte("redis://u:s3c#retPW@localhost:1/0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"empty entry after an unparsable one", []string{"status", "--nodes", "redis://u:s3cret PW@localhost:1/0,,localhost:2", "x"}},
		{"duplicate host:port entries with a password", []string{"status", "--nodes", "u:s3cretPW@localhost:1,u:s3cretPW@localhost:1", "x"}},
		{"nodes file with # in the password", []string{"status", "--nodes-file", file, "x"}},
		// A ',' in the password splits the list there; the first half
		// ends in ":<digits>", which reads as a port.
		{"comma after a colon in the password", []string{"status", "--nodes", "redis://u:s3cretPW:3,x9@localhost:1/0", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, nil, tc.args...)
			out := r.stdout + r.stderr
			// "s3c" is the part of the secret that survives the '#' cut.
			if strings.Contains(out, secret) || strings.Contains(out, "s3c") {
				t.Errorf("exit %d; the password (or its start) is in the output:\n%s", r.code, out)
			}
		})
	}
}

// A ',' in an all-digit password ("redis://u:4821,9@host:1/0") splits the
// list into "redis://u:4821", a host "u" at port 4821 to the eye of any
// parser, and "9@host:1/0". The second, an '@' with no scheme, can only
// be the rest of the first: the list is refused, naming both entries and
// neither half of the password.
func TestUsePasswordCommaAllDigits(t *testing.T) {
	r := run(t, nil, "status", "--nodes", "redis://u:4821,9377@localhost:1/0,localhost:2", "x")
	out := r.stdout + r.stderr
	if strings.Contains(out, "4821") || strings.Contains(out, "9377") {
		t.Errorf("exit %d; the password (or part of it) is in the output:\n%s", r.code, out)
	}
	if r.code != 125 || !strings.Contains(out, "%2C") {
		t.Errorf("exit %d; want 125 and a hint to write the ',' as %%2C:\n%s", r.code, out)
	}
}

// TestUseExtraArgsHidePassword: flags after the lock NAME are not parsed
// as flags; status and hold refused them quoting every argument, so a
// node URL after --nodes (or in --nodes=URL) printed its password
// (operator review, 2026-12-07). They now name the flag, and hide what a
// value may hold.
func TestUseExtraArgsHidePassword(t *testing.T) {
	for _, args := range [][]string{
		{"status", "x", "--nodes", "redis://u:s3cretPW@localhost:1/0"},
		{"status", "x", "--nodes=redis://u:s3cretPW@localhost:1/0"},
		{"hold", "x", "--nodes", "redis://u:s3cretPW@localhost:1/0"},
		{"status", "x", "redis://u:s3cretPW@localhost:1/0"},
		{"watch", "x", "--nodes=redis://u:s3cretPW@localhost:1/0"},
	} {
		r := run(t, nil, args...)
		out := r.stdout + r.stderr
		if r.code != 125 || strings.Contains(out, "s3cretPW") {
			t.Errorf("%q: exit %d; want 125 and no password:\n%s", args, r.code, out)
		}
		if strings.Contains(args[2], "-") && !strings.Contains(out, "flags go before") {
			t.Errorf("%q: want the flag named as one that goes before the NAME:\n%s", args, out)
		}
	}
}
