package main

import (
	"github.com/distlock/distlock/internal/redistest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunSerializes runs two `distlock run`s of one lock at once: each
// child writes start and end lines, with its token, to a shared file
// around a pause; the lines must never interleave, and the later holder's
// token must be the greater.
func TestRunSerializes(t *testing.T) {
	_, nodes := startMasters(t, 3)
	log := filepath.Join(t.TempDir(), "log")
	script := `echo "start $DISTLOCK_TOKEN" >> "$LOG"; sleep 0.3; echo "end $DISTLOCK_TOKEN" >> "$LOG"`
	var waits []func() int
	for range 2 {
		cmd := distlockCmd(t, nodes, "run", "serial", "--", "sh", "-c", script)
		cmd.Env = append(cmd.Env, "LOG="+log)
		_, _, wait := background(t, cmd)
		waits = append(waits, wait)
	}
	for i, wait := range waits {
		if code := wait(); code != 0 {
			t.Errorf("run %d: exit status %d; want 0", i, code)
		}
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(data))
	if len(got) != 8 {
		t.Fatalf("log %q; want 4 lines", data)
	}
	// start A, end A, start B, end B, with A < B.
	if got[0] != "start" || got[2] != "end" || got[4] != "start" || got[6] != "end" || got[1] != got[3] || got[5] != got[7] {
		t.Fatalf("log %q; want one child's start and end, then the other's", data)
	}
	a, _ := strconv.ParseUint(got[1], 10, 64)
	b, _ := strconv.ParseUint(got[5], 10, 64)
	if a == 0 || b <= a {
		t.Errorf("tokens %d then %d; want the second greater", a, b)
	}
}

// TestRunChild checks what the child gets (token, name, stdin) and the
// exit statuses of a child that runs to its end.
func TestRunChild(t *testing.T) {
	_, nodes := startMasters(t, 3)

	t.Run("environment and stdin", func(t *testing.T) {
		cmd := distlockCmd(t, nodes, "run", "jobs/env", "--", "sh", "-c", `echo "$DISTLOCK_NAME $DISTLOCK_TOKEN"; cat`)
		cmd.Stdin = strings.NewReader("from stdin\n")
		r := finish(t, cmd)
		r.want(t, 0)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 2 || lines[1] != "from stdin" {
			t.Fatalf("stdout %q; want the name and token, then stdin", r.stdout)
		}
		f := strings.Fields(lines[0])
		if len(f) != 2 || f[0] != "jobs/env" {
			t.Fatalf("child saw %q; want DISTLOCK_NAME jobs/env and a token", lines[0])
		}
		if tok, err := strconv.ParseUint(f[1], 10, 64); err != nil || tok == 0 {
			t.Errorf("DISTLOCK_TOKEN %q; want a positive integer", f[1])
		}
	})

	for _, tc := range []struct {
		name string
		argv []string
		code int
		msg  string // in stderr
	}{
		{"own status", []string{"sh", "-c", "exit 7"}, 7, ""},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM), ""},
		{"not found", []string{"no-such-command-distlock"}, 127, "no-such-command-distlock: command not found"},
		{"not found by path", []string{"/no/such/file"}, 127, "command not found"},
		{"not executable", []string{os.DevNull}, 126, "cannot execute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, nodes, append([]string{"run", "jobs/exit", "--"}, tc.argv...)...)
			if tc.msg == "" {
				r.want(t, tc.code)
			} else {
				r.want(t, tc.code, tc.msg)
			}
		})
	}

	// Each run released its lock: it is free now.
	run(t, nodes, "status", "jobs/exit").want(t, 0)
	run(t, nodes, "status", "jobs/env").want(t, 0)
}

// TestRunNotAcquired: a held lock with --try, or past --timeout, gives
// 124 and never runs the command.
func TestRunNotAcquired(t *testing.T) {
	_, nodes := startMasters(t, 3)
	hold(t, nodes, "busy")
	marker := filepath.Join(t.TempDir(), "ran")

	r := run(t, nodes, "run", "--try", "busy", "--", "touch", marker)
	r.want(t, 124, `lock "busy" is held by another holder`)

	r = run(t, nodes, "run", "--timeout", "300ms", "busy", "--", "touch", marker)
	r.want(t, 124, "not acquired within --timeout 300ms")
	if r.took < 300*time.Millisecond {
		t.Errorf("gave up after %v; want at least --timeout 300ms", r.took)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran without the lock")
	}
}

// TestRunTryMajorityUnreachable: --try with a majority of masters not
// answering gives 123 (masters unreachable), not 124: no --timeout was
// given, and the masters' own timeouts are not the caller's.
func TestRunTryMajorityUnreachable(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	redistest.PauseUntilEnd(t, servers[1:]...)
	r := run(t, nodes, "run", "--try", "unreachable", "--", "true")
	r.want(t, 123, `lock "unreachable" not acquired`)
	if strings.Contains(r.stderr, "--timeout") {
		t.Errorf("stderr blames --timeout, which was not given: %s", r.stderr)
	}
}

// TestRunInterruptedWhileWaiting: SIGINT while waiting for the lock ends
// the wait with 128+2, and the command never runs.
func TestRunInterruptedWhileWaiting(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	l := hold(t, nodes, "busy")
	marker := filepath.Join(t.TempDir(), "ran")
	cmd := distlockCmd(t, nodes, "run", "busy", "--", "touch", marker)
	_, stderr, wait := background(t, cmd)
	// Once it stands in master 0's waiting list, it is waiting.
	waitFor(t, "distlock run in master 0's waiting list", func() bool {
		keys, err := servers[0].Do("KEYS", "distlock:wait:*")
		return err == nil && keys != ""
	})
	cmd.Process.Signal(syscall.SIGINT)
	waitLine(t, stderr, `interrupt while waiting for lock "busy"; touch not run`)
	if code := wait(); code != 128+int(syscall.SIGINT) {
		t.Errorf("exit status %d; want %d", code, 128+int(syscall.SIGINT))
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran")
	}
	if l.Err() != nil {
		t.Errorf("holder's lease: %v; want still held", l.Err())
	}
}

// TestRunSignalsForwarded: SIGTERM to distlock reaches the command, whose
// exit by it is reported as 128+15.
func TestRunSignalsForwarded(t *testing.T) {
	_, nodes := startMasters(t, 3)
	cmd := distlockCmd(t, nodes, "run", "fwd", "--", "sh", "-c", `trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
	stdout, _, wait := background(t, cmd)
	waitLine(t, stdout, "ready")
	cmd.Process.Signal(syscall.SIGTERM)
	waitLine(t, stdout, "got TERM")
	if code := wait(); code != 3 {
		t.Errorf("exit status %d; want the command's own 3", code)
	}
	run(t, nodes, "status", "fwd").want(t, 0)
}

// TestRunLeaseLost pauses a majority of masters under a running command:
// the lease is lost within its TTL, the command gets SIGTERM, and a
// command that ignores it gets SIGKILL after --grace. distlock exits 122.
func TestRunLeaseLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		msg    string
	}{
		{"stops on SIGTERM", `echo ready; while :; do sleep 0.05; done`, "stopping sh (SIGTERM, SIGKILL after 1s)"},
		// A command that exits 0 on SIGTERM still did not run to its end
		// holding the lock.
		{"exits 0 on SIGTERM", `trap "exit 0" TERM; echo ready; while :; do sleep 0.05; done`, "stopping sh"},
		{"ignores SIGTERM", `trap "" TERM; echo ready; while :; do sleep 0.05; done`, "sh still running 1s after SIGTERM: SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // mostly waiting for the TTL and the grace
			servers, nodes := startMasters(t, 3)
			const ttl, grace = 2 * time.Second, time.Second
			cmd := distlockCmd(t, nodes, "run", "--ttl", ttl.String(), "--grace", grace.String(), "lost", "--", "sh", "-c", tc.script)
			stdout, stderr, wait := background(t, cmd)
			waitLine(t, stdout, "ready")
			start := time.Now()
			redistest.PauseUntilEnd(t, servers[:2]...)
			waitLine(t, stderr, tc.msg)
			if code := wait(); code != 122 {
				t.Errorf("exit status %d; want 122", code)
			}
			// The command is stopped within TTL + grace of the pause; the
			// second allowed beyond is for distlock's release attempt on
			// the paused masters and a loaded machine.
			if d := time.Since(start); d > ttl+grace+3*time.Second {
				t.Errorf("distlock ended %v after the masters were paused; want within TTL %v + grace %v (+3s)", d, ttl, grace)
			}
		})
	}
}

// waitFor fails the test unless cond becomes true within 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: want %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunMastersUnreachable: with 1 of 3 masters reachable, run says so
// at once and every few seconds while it waits, and gives up with 123
// (masters unreachable), not 124, when --timeout runs out, in one line.
func TestRunMastersUnreachable(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	for _, s := range servers[1:] {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("waiting", func(t *testing.T) {
		cmd := distlockCmd(t, nodes, "run", "unreachable", "--", "true")
		start := time.Now()
		_, stderr, wait := background(t, cmd)
		const msg = `1 of 3 masters reachable, 2 needed; waiting for lock "unreachable"`
		waitLine(t, stderr, msg)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("said it %v after starting; want within 2s", d)
		}
		waitLine(t, stderr, msg) // and again
		cmd.Process.Signal(syscall.SIGINT)
		if code := wait(); code != 128+int(syscall.SIGINT) {
			t.Errorf("exit status %d; want %d", code, 128+int(syscall.SIGINT))
		}
	})

	t.Run("timeout", func(t *testing.T) {
		r := run(t, nodes, "run", "--timeout", "1s", "unreachable", "--", "true")
		r.want(t, 123, `lock "unreachable" not acquired within --timeout 1s: 1 of 3 masters reachable, 2 needed; true not run (master 1: `)
		last := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if l := last[len(last)-1]; !strings.HasPrefix(l, "distlock run: lock") {
			t.Errorf("last line of stderr %q; want the whole error on one line starting with \"distlock run: lock\"", l)
		}
	})
}

// TestRunTimeoutCountsConnecting: --timeout (-w) bounds the whole wait,
// connecting included, as flock -w does. With 2 of 3 masters paused, New
// waits its dial timeout (2 s) for them; run -w 1 used to give up 3 s
// after it started, and a SIGTERM meanwhile ended it without a word.
func TestRunTimeoutCountsConnecting(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	redistest.PauseUntilEnd(t, servers[1:]...)

	t.Run("timeout", func(t *testing.T) {
		r := run(t, nodes, "run", "-w", "1", "paused", "--", "true")
		r.want(t, 123, `lock "paused" not acquired within --timeout 1s: still connecting to the masters (2 of 3 needed); true not run`)
		if r.took > 2*time.Second {
			t.Errorf("run -w 1 took %v; want about 1.5s (1s and the half second connect may run over)", r.took)
		}
	})

	t.Run("signal", func(t *testing.T) {
		cmd := distlockCmd(t, nodes, "hold", "paused")
		_, stderr, wait := background(t, cmd)
		time.Sleep(500 * time.Millisecond) // inside New's 2 s dial
		cmd.Process.Signal(syscall.SIGTERM)
		waitLine(t, stderr, `distlock hold: terminated while connecting to the masters; lock "paused" not taken`)
		if code := wait(); code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit status %d; want %d", code, 128+int(syscall.SIGTERM))
		}
	})
}

// TestRunExitsAfterRelease: with one of three masters not answering, run
// exits as soon as the command has and the release reached a majority,
// without waiting for that master.
func TestRunExitsAfterRelease(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	redistest.PauseUntilEnd(t, servers[2])
	r := run(t, nodes, "run", "quick", "--", "true")
	r.want(t, 0)
	// 250 ms for New to give up on the paused master, less than 100 ms
	// for the rest; distlock used to wait 2 s for that master.
	if r.took > time.Second {
		t.Errorf("distlock took %v; want under 1s", r.took)
	}
}

// TestRunFlockFlags: -n, -w SECS, -E CODE and --quiet, as flock has them,
// and durations given as bare seconds.
func TestRunFlockFlags(t *testing.T) {
	_, nodes := startMasters(t, 3)
	hold(t, nodes, "busy")

	run(t, nodes, "run", "-n", "busy", "--", "true").want(t, 124, `lock "busy" is held by another holder; true not run`)
	run(t, nodes, "run", "-n", "-E", "3", "busy", "--", "true").want(t, 3, "held by another holder")
	r := run(t, nodes, "run", "-n", "--quiet", "busy", "--", "true")
	r.want(t, 124)
	if r.stderr != "" {
		t.Errorf("--quiet printed %q; want nothing", r.stderr)
	}
	r = run(t, nodes, "run", "-w", "0.3", "busy", "--", "true")
	r.want(t, 124, `lock "busy" not acquired within --timeout 300ms: held by another holder; true not run`)
	if r.took < 300*time.Millisecond {
		t.Errorf("-w 0.3 gave up after %v; want at least 300ms", r.took)
	}
	// Bare seconds for --ttl and --grace too.
	run(t, nodes, "run", "--ttl", "10", "--grace", "1", "free", "--", "true").want(t, 0)
}

// TestRunEnvironment: the command gets DISTLOCK_NODES, which may carry
// passwords, only with --pass-nodes; masters can come from
// DISTLOCK_NODES_FILE.
func TestRunEnvironment(t *testing.T) {
	_, nodes := startMasters(t, 3)
	r := run(t, nodes, "run", "env", "--", "sh", "-c", `echo "nodes=$DISTLOCK_NODES"`)
	r.want(t, 0)
	if strings.TrimSpace(r.stdout) != "nodes=" {
		t.Errorf("the command saw %q; want DISTLOCK_NODES unset", r.stdout)
	}
	r = run(t, nodes, "run", "--pass-nodes", "env", "--", "sh", "-c", `echo "nodes=$DISTLOCK_NODES"`)
	r.want(t, 0)
	if got, want := strings.TrimSpace(r.stdout), "nodes="+strings.Join(nodes, ","); got != want {
		t.Errorf("with --pass-nodes the command saw %q; want %q", got, want)
	}

	file := filepath.Join(t.TempDir(), "nodes")
	list := "# the masters\n" + nodes[0] + "\n" + nodes[1] + ", " + nodes[2] + " # two on a line\n"
	if err := os.WriteFile(file, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, nodes, "run", "--nodes-file", file, "fromfile", "--", "true").want(t, 0)
	// Both set: a usage error. This also shows that the binary reads
	// DISTLOCK_NODES_FILE before the test below unsets DISTLOCK_NODES: a
	// binary that ignored it would use the default master, 127.0.0.1:6379.
	cmd := distlockCmd(t, nil, "run", "fromfile", "--", "true")
	cmd.Env = append(cmd.Env, "DISTLOCK_NODES_FILE="+file)
	finish(t, cmd).want(t, 125, "DISTLOCK_NODES and DISTLOCK_NODES_FILE are both set")
	if t.Failed() {
		t.FailNow()
	}
	cmd = distlockCmd(t, nil, "run", "fromfile", "--", "sh", "-c", `echo "token=$DISTLOCK_TOKEN"`)
	cmd.Env = append(cmd.Env, "DISTLOCK_NODES=", "DISTLOCK_NODES_FILE="+file)
	r = finish(t, cmd)
	r.want(t, 0)
	if !strings.HasPrefix(r.stdout, "token=") || strings.TrimSpace(r.stdout) == "token=" {
		t.Errorf("stdout %q; want the token, the masters read from DISTLOCK_NODES_FILE", r.stdout)
	}
	// ... the same three masters: the lock is free on them again.
	run(t, nodes, "status", "fromfile").want(t, 0)
}

// TestHold: hold prints the token, holds the lock until SIGINT, then
// releases it and exits 0.
func TestHold(t *testing.T) {
	_, nodes := startMasters(t, 3)
	cmd := distlockCmd(t, nodes, "hold", "held")
	stdout, stderr, wait := background(t, cmd)
	token := <-stdout
	if tok, err := strconv.ParseUint(token, 10, 64); err != nil || tok == 0 {
		t.Fatalf("hold printed %q; want the token", token)
	}
	waitLine(t, stderr, `holding lock "held" (token `+token+`) until interrupted`)
	run(t, nodes, "run", "-n", "held", "--", "true").want(t, 124)
	cmd.Process.Signal(syscall.SIGINT)
	if code := wait(); code != 0 {
		t.Errorf("exit status %d; want 0", code)
	}
	run(t, nodes, "status", "held").want(t, 0)
}

// --pass-nodes gives the command the masters run uses in DISTLOCK_NODES,
// also when --nodes named them: a distlock inside reads the same masters,
// not the default one.
func TestRunPassNodesFromFlag(t *testing.T) {
	_, nodes := startMasters(t, 3)
	r := run(t, nil, "run", "--nodes", strings.Join(nodes, ","), "--pass-nodes", "pn", "--", "sh", "-c", `echo "nodes=$DISTLOCK_NODES"`)
	r.want(t, 0)
	if !strings.Contains(r.stdout, "nodes="+strings.Join(nodes, ",")+"\n") {
		t.Errorf("--pass-nodes with --nodes: the command's DISTLOCK_NODES is not the masters used:\n%s", r.stdout)
	}
}

// TestRunGraceZeroStopsAtLeaseEnd: with --grace 0, a job whose renewals
// fail (a majority of masters paused) gets SIGKILL when the lease ends,
// its clock-drift margin before the keys expire on the masters: nothing
// of it runs when another holder can take the lock. (With a grace, it
// gets SIGTERM then, and runs up to the grace past it: docs/cli.md.)
func TestRunGraceZeroStopsAtLeaseEnd(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	const ttl = 3 * time.Second
	log := filepath.Join(t.TempDir(), "log")
	cmd := distlockCmd(t, nodes, "run", "--ttl", ttl.String(), "--grace", "0", "grace-zero", "--", "sh", "-c",
		`trap "" TERM; echo ready; while :; do date +%s%N >> "$LOG"; sleep 0.02; done`)
	cmd.Env = append(cmd.Env, "LOG="+log)
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stdout, "ready")
	// Pause two masters that hold the key (a lease holds on a majority,
	// which need not include masters 0 and 1: CI, 2026-12-07), and take
	// the keys' expiry there from their PTTL: no renewal lands there after
	// the pause.
	var expiry time.Time
	var holders []*redistest.Server
	for deadline := time.Now().Add(5 * time.Second); len(holders) < 2; {
		expiry, holders = time.Time{}, holders[:0]
		for _, s := range servers {
			out, err := s.Do("PTTL", "distlock:grace-zero")
			if err != nil {
				t.Fatal(err)
			}
			ms, err := strconv.ParseInt(out, 10, 64)
			if err != nil || ms <= 0 || len(holders) == 2 {
				continue
			}
			holders = append(holders, s)
			if e := time.Now().Add(time.Duration(ms) * time.Millisecond); expiry.IsZero() || e.Before(expiry) {
				expiry = e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 2 masters hold the key after 5 s")
		}
	}
	redistest.PauseUntilEnd(t, holders...)
	var errText strings.Builder
	for line := range stderr {
		errText.WriteString(line + "\n")
	}
	if code := wait(); code != 122 {
		t.Errorf("exit status %d; want 122\nstderr: %s", code, errText.String())
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(data))
	ns, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	last := time.Unix(0, ns)
	t.Logf("the command's last write %v before the keys' expiry on the paused masters", expiry.Sub(last))
	// 150 ms allow for a loaded machine's late timer and the shell's
	// last write; with --grace 2s it wrote on 2 s past the expiry.
	if slack := 150 * time.Millisecond; last.After(expiry.Add(slack)) {
		t.Errorf("the command wrote %v after the keys expired on the paused majority (allowed: %v)\nstderr: %s", last.Sub(expiry), slack, errText.String())
	}
}

// TestRunLeaseLostAtOnce: a lease whose keys a majority flushed is lost
// at once (loss events), not at its TTL: the command gets SIGTERM then,
// and SIGKILL --grace later. The lock may be another holder's meanwhile
// (docs/cli.md says so); what this holds to account is that the job is
// stopped within the grace of the flush, not a TTL later.
func TestRunLeaseLostAtOnce(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	const ttl, grace = 30 * time.Second, time.Second
	cmd := distlockCmd(t, nodes, "run", "--ttl", ttl.String(), "--grace", grace.String(), "flushed", "--", "sh", "-c",
		`trap "" TERM; echo ready; while :; do sleep 0.05; done`)
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stdout, "ready")
	start := time.Now()
	for _, s := range servers[:2] {
		if _, err := s.Do("FLUSHALL"); err != nil {
			t.Fatal(err)
		}
	}
	waitLine(t, stderr, "stopping sh (SIGTERM, SIGKILL after 1s)")
	if code := wait(); code != 122 {
		t.Errorf("exit status %d; want 122", code)
	}
	if d := time.Since(start); d > grace+2*time.Second {
		t.Errorf("distlock ended %v after the flushes; want within --grace %v (+2s), not the TTL %v", d, grace, ttl)
	}
}
