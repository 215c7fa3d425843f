package main

import (
	"strings"
	"syscall"
	"testing"
)

// TestUseNodesListPasswordNotPrinted: found by the use tester. An operator
// who separates masters with a space or a ';' instead of ',' writes one
// entry whose URL path holds the rest of the list. parseNode passed on
// rueidis.ParseURL's error, which quotes the path, so the second master's
// password was printed:
//
//	distlock status: Config.Nodes[0] "redis://u:xxxxx@127.0.0.1:2/0":
//	redis: invalid URL path: /0 redis://u:s3cretPW@127.0.0.1:2/0 (masters from DISTLOCK_NODES)
//
// docs/security.md: no password in any output. Expected: exit 125, a
// message naming the mistake, and no password.
func TestUseNodesListPasswordNotPrinted(t *testing.T) {
	const secret = "s3cretPW"
	for _, list := range []string{
		"redis://u:s3cretPW@127.0.0.1:1/0 redis://u:s3cretPW@127.0.0.1:2/0",
		"redis://u:s3cretPW@127.0.0.1:1/0;redis://u:s3cretPW@127.0.0.1:2/0",
		"redis://u:s3cretPW@127.0.0.1:1/0/redis://u:s3cretPW@127.0.0.1:2/0",
	} {
		for _, cmd := range [][]string{
			{"status", "x"},
			{"run", "-n", "x", "--", "true"},
			{"hold", "x"},
			{"watch", "x"},
		} {
			args := append([]string{cmd[0], "--nodes", list}, cmd[1:]...)
			r := run(t, nil, args...)
			r.want(t, 125, "(several masters: separate them with ',')")
			if out := r.stdout + r.stderr; strings.Contains(out, secret) {
				t.Errorf("distlock %s --nodes %q: the password is in the output:\n%s", cmd[0], list, out)
			}
		}
	}
}

// TestUseRunHostileMetadata: the most hostile --owner/--metadata a run
// accepts (a newline, an invalid UTF-8 byte, an escape sequence, a '|',
// a forged "holder" line) is printed quoted, on one line, by status and
// watch: no line of status's output is the forged one, and no raw ESC
// reaches the terminal.
func TestUseRunHostileMetadata(t *testing.T) {
	_, nodes := startMasters(t, 3)
	cmd := distlockCmd(t, nodes, "watch", "h")
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stderr, "watching h on 3 masters")

	meta := "a\nholder ffffffff: owner \"evil\"\xff\x1b[31m|x"
	r := run(t, nodes, "run", "--pass-nodes", "--owner", "o|w n ü", "--metadata", meta, "h", "--",
		binary, "status", "h")
	r.want(t, 1) // the status run printed: held
	if want := `owner "o|w n ü", metadata "a\nholder ffffffff: owner \"evil\"\xff\x1b[31m|x"`; !strings.Contains(r.stdout, want) {
		t.Errorf("status does not show %s:\n%s", want, r.stdout)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "holder ffffffff") {
			t.Errorf("status printed the forged holder line:\n%s", r.stdout)
		}
	}
	if strings.Contains(r.stdout, "\x1b") {
		t.Errorf("status printed a raw ESC:\n%q", r.stdout)
	}
	got := waitLine(t, stdout, "h acquired")
	if strings.Contains(got, "\x1b") || !strings.Contains(got, `owner="o|w n ü"`) {
		t.Errorf("watch event %q: want the owner quoted and no raw ESC", got)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if code := wait(); code != 0 {
		t.Errorf("watch exit status after SIGINT %d; want 0", code)
	}
}
