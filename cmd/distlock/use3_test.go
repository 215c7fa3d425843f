package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/redistest"
)

// TestCommaInPasswordNotPrinted: found by a use test.
// docs/security.md: "No error ... carries" a password; "an entry where
// they [unencoded / ? # @ %] cut the URL short is refused", quoted with
// everything after the user's ':' up to the last '@' replaced by xxxxx.
// A ',' in a password is in the same list (errMalformedURL says "',' as
// %2C"), but the master list is split at commas before any entry is
// parsed: "redis://u:6380,topsecret@host:port/0" becomes
// "redis://u:6380" (a valid URL: host u, port 6380) and
// "topsecret@host:port/0", which is refused as
//
//	Config.Nodes[1] "topsecret@127.0.0.1:17301/0": want host:port, ...
//
// with the password's tail printed whole: redact only hides what follows
// a ':' before the '@', and this piece has no ':'.
// redact now hides all of an entry before its last '@' when the entry has
// no scheme (no host:port holds an '@').
func TestCommaInPasswordNotPrinted(t *testing.T) {
	const tail = "topSECRETtail"
	for _, nodes := range []string{
		"redis://u:6380," + tail + "@localhost:1/0",
		"redis://:6380," + tail + "@localhost:1/0",
	} {
		for _, how := range []string{"--nodes", "DISTLOCK_NODES"} {
			var r result
			if how == "--nodes" {
				r = run(t, nil, "status", "--nodes", nodes, "x")
			} else {
				cmd := distlockCmd(t, nil, "status", "x")
				cmd.Env = append(cmd.Env, "DISTLOCK_NODES="+nodes)
				r = finish(t, cmd)
			}
			if out := r.stdout + r.stderr; strings.Contains(out, tail) {
				t.Errorf("%s %q: exit %d; the password's part after the ',' is in the output:\n%s", how, nodes, r.code, out)
			}
		}
	}
}

// TestHugeSecondsNotNegative: found by a use test.
// durationValue.Set takes bare seconds and refuses any above
// math.MaxInt64/float64(time.Second), but that bound is itself a float64
// rounded up to 2^63 ns: "9223372036.854775807" (the largest
// time.Duration, in seconds) parses to the same float, passes the check,
// and secs*1e9 = 2^63 overflows int64 to math.MinInt64. The positive
// value the user typed is then reported as negative:
//
//	distlock run: --timeout -2562047h47m16.854775808s: must not be negative
//	distlock run: --ttl -2562047h47m16.854775808s: must be more than 0
//
// docs/cli.md: exit 125 "usage: a bad flag ... (the message names it)";
// this one named a value the user never gave. Such a value is now refused
// with "want a duration ...".
func TestHugeSecondsNotNegative(t *testing.T) {
	const x = "9223372036.854775807"
	for _, args := range [][]string{
		{"run", "-w", x, "x", "--", "true"},
		{"run", "--ttl", x, "x", "--", "true"},
		{"status", "--timeout", x, "x"},
		{"watch", "--timeout", x, "x"},
	} {
		r := run(t, nil, args...)
		if strings.Contains(r.stderr, "-2562047h") || strings.Contains(r.stderr, "negative") {
			t.Errorf("distlock %q: exit %d; a positive number of seconds is reported as negative:\n%s", args, r.code, r.stderr)
		}
	}
}

// TestPathAndQueryDBRefused: found by a use test. checkQuery's
// godoc: it refuses the query options "rueidis would take without a word
// but not as written", among them "a key given twice (the first
// counts)", and ?db=1&db=2 is refused ("query option db given 2 times").
// But a database given twice, once in the path and once in the query, is
// taken without a word, and the query wins: "redis://host:port/0?db=3"
// locks in database 3, which status then names "redis://host:port/3",
// not the /0 the operator wrote and would look in with redis-cli -n 0.
// A list mixing "/0" and "/0?db=3" entries on different hosts splits its
// locks across databases, where another Client with "/0" entries never
// sees them.
//
// parseNode now refuses a URL that gives the database in both: "the
// database is given twice, in the path and as ?db=; give it once",
// quoting no value.
func TestPathAndQueryDBRefused(t *testing.T) {
	_, nodes := startMasters(t, 1)
	r := run(t, nil, "status", "--nodes", nodes[0]+"?db=3", "x")
	t.Logf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	r.want(t, 125)
}

// TestWatchStopsWhileConnecting: found by a use test. watch connected
// before it looked at its signals or --timeout: with a majority of
// masters paused, New waits its dial timeout for them, and SIGINT or
// --timeout meanwhile did nothing until New gave up. Now a signal ends
// the wait at once (exit 0, as a watch stopped by one), and --timeout
// too, with 123: no majority answered.
func TestWatchStopsWhileConnecting(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	redistest.PauseUntilEnd(t, servers[1:]...)
	t.Run("timeout", func(t *testing.T) {
		r := run(t, nodes, "watch", "--timeout", "0.3", "paused")
		r.want(t, exitUnreachable, "distlock watch: --timeout 300ms ran out while connecting to the masters (fewer than 2 of 3 answered)")
		if r.took > 1500*time.Millisecond {
			t.Errorf("watch --timeout 0.3 took %v; New's dial timeout is 2 s", r.took)
		}
	})

	t.Run("signal", func(t *testing.T) {
		cmd := distlockCmd(t, nodes, "watch", "paused")
		_, stderr, wait := background(t, cmd)
		time.Sleep(300 * time.Millisecond) // inside New's 2 s dial
		start := time.Now()
		cmd.Process.Signal(os.Interrupt)
		waitLine(t, stderr, "distlock watch: interrupted while connecting to the masters")
		if code := wait(); code != exitOK {
			t.Errorf("exit status %d; want 0", code)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("watch took %v to stop after SIGINT; New's dial timeout is 2 s", took)
		}
	})
}

// TestWatchQuitStops: found by a use test. watch stopped on SIGINT and
// SIGTERM only: SIGQUIT dumped every goroutine's stack (688 lines) and
// exited 2, where hold stops on it with a message and run passes it on
// without a dump; SIGHUP killed it (129). Both now stop it as SIGINT does.
func TestWatchQuitStops(t *testing.T) {
	_, nodes := startMasters(t, 3)
	for _, sig := range []syscall.Signal{syscall.SIGQUIT, syscall.SIGHUP} {
		cmd := distlockCmd(t, nodes, "watch", "k")
		_, stderr, wait := background(t, cmd)
		waitLine(t, stderr, "distlock watch: watching")
		cmd.Process.Signal(sig)
		var lines []string
		for l := range stderr {
			lines = append(lines, l)
		}
		if code := wait(); code != exitOK || strings.Contains(strings.Join(lines, "\n"), "goroutine ") {
			t.Errorf("watch on %v: exit %d, %d lines on stderr, first %q; want exit 0, no stack dump", sig, code, len(lines), strings.Join(lines[:min(2, len(lines))], " | "))
		}
	}
}
