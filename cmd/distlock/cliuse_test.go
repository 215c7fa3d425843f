package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestUseWatchKeyWithoutExpiry: found by the use tester. Another program
// SETs the lock's key, without expiry, on every master: `status` says
// "held (3 of 3 masters agree...); no expiry", and `run -n` cannot take
// the lock, but `watch` prints nothing at all, neither when the key is
// set nor when it is deleted. docs/watch.md: a value a majority holds is
// "acquired", writes by other clients are seen through keyspace
// notifications, and owner/metadata are "" for "a value ... of another
// program". A value written with PX is reported (acquired, then released
// on DEL); the same value without expiry is not: the flags distlock sets
// (Kgx) give no keyspace event for a plain SET (that is '$'), while SET
// ... PX also makes an "expire" (g) event.
//
// Not fixed: adding '$' makes every master publish a second message for
// each of distlock's own writes (the cost benchmarks/results measures);
// at the least docs/watch.md and docs/cli.md should say that watch does
// not see another program's plain SET until it reads the key again.
func TestUseWatchKeyWithoutExpiry(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	cmd := distlockCmd(t, nodes, "watch", "noexp")
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stderr, "watching noexp on 3 masters")

	for _, s := range servers {
		if _, err := s.Do("SET", "distlock:noexp", "someone-else"); err != nil {
			t.Fatal(err)
		}
	}
	if r := run(t, nodes, "status", "noexp"); r.code != 1 || !strings.Contains(r.stdout, "no expiry") {
		t.Fatalf("status exit %d, want 1 (held, no expiry):\n%s%s", r.code, r.stdout, r.stderr)
	}
	got := ""
	select {
	case got = <-stdout:
	case <-time.After(3 * time.Second):
	}
	if !strings.Contains(got, "noexp acquired masters=3/3") {
		t.Errorf("3 of 3 masters hold a value without expiry (status: held); watch printed %q in 3s, want an acquired event", got)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := wait(); code != 0 {
		t.Errorf("watch exit status after SIGTERM %d; want 0", code)
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
