package main

import (
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		r := run(t, nil, arg)
		r.want(t, 0)
		if !strings.HasPrefix(r.stdout, "distlock ") || !strings.Contains(r.stdout, "go1.") {
			t.Errorf("distlock %s printed %q; want \"distlock VERSION goVERSION OS/ARCH\"", arg, r.stdout)
		}
	}
}

// TestHelp: --help on the command and on every subcommand prints usage
// on stdout and exits 0.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Usage:", "run ", "watch ", "status ", "demo ", "DISTLOCK_NODES"}},
		{[]string{"-h"}, []string{"Usage:"}},
		{[]string{"help", "status"}, []string{"Usage: distlock status [flags] NAME"}},
		{[]string{"run", "--help"}, []string{"Usage: distlock run [flags] NAME -- COMMAND [ARGS...]", "DISTLOCK_TOKEN", "-try", "-grace", "-ttl", "-timeout", "-nodes", "122"}},
		{[]string{"watch", "--help"}, []string{"Usage: distlock watch [flags] NAME...", "-json"}},
		{[]string{"status", "--help"}, []string{"Usage: distlock status [flags] NAME", "-json", "2 cannot tell"}},
		{[]string{"demo", "--help"}, []string{"Usage: distlock demo [flags]", "redis-server", "-duration"}},
	} {
		r := run(t, nil, tc.args...)
		r.want(t, 0)
		for _, s := range tc.want {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("distlock %s: stdout does not contain %q:\n%s", strings.Join(tc.args, " "), s, r.stdout)
			}
		}
	}
}

// TestUsageErrors: bad command lines say what is wrong and exit 125,
// without contacting any master.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string // DISTLOCK_NODES, when set
		want string
	}{
		{nil, "", "Usage:"},
		{[]string{"lock"}, "", `unknown command "lock"`},
		{[]string{"help", "lock"}, "", `unknown command "lock"`},
		{[]string{"run"}, "", "missing lock NAME and -- COMMAND"},
		{[]string{"run", "job"}, "", `missing -- COMMAND after lock NAME "job"`},
		{[]string{"run", "job", "true"}, "", `want -- after lock NAME "job", got "true"`},
		{[]string{"run", "job", "--try", "--", "true"}, "", `got "--try" (flags go before NAME)`},
		{[]string{"run", "job", "--"}, "", "missing COMMAND after --"},
		{[]string{"run", "--", "true"}, "", "missing lock NAME"},
		{[]string{"run", "--ttl", "soon", "job", "--", "true"}, "", `invalid value "soon" for flag -ttl`},
		{[]string{"run", "--ttl", "0s", "job", "--", "true"}, "", "--ttl 0s: must be more than 0"},
		{[]string{"run", "--ttl", "2ms", "job", "--", "true"}, "", "TTL 2ms is not larger than its clock-drift margin"},
		{[]string{"run", "--grace", "-1s", "job", "--", "true"}, "", "--grace -1s: must not be negative"},
		{[]string{"run", "--try", "--timeout", "1s", "job", "--", "true"}, "", "--try and --timeout exclude each other"},
		{[]string{"run", "--bogus", "job", "--", "true"}, "", "flag provided but not defined: -bogus"},
		{[]string{"run", "fence:x", "--", "true"}, "", "reserved"},
		{[]string{"run", "--nodes", "http://a:6379", "job", "--", "true"}, "", `"http://a:6379": unsupported scheme "http"`},
		{[]string{"run", "job", "--", "true"}, "redis://127.0.0.1:99999/0", `port "99999"`},
		{[]string{"run", "job", "--", "true"}, "redis://127.0.0.1:1/0,,", "DISTLOCK_NODES: master 1 of"},
		{[]string{"status"}, "", "missing lock NAME"},
		{[]string{"status", "a", "b"}, "", "one lock NAME at a time"},
		{[]string{"status", ""}, "", "empty lock NAME"},
		{[]string{"watch"}, "", "missing lock NAME"},
		{[]string{"watch", "--timeout", "-1s", "x"}, "", "--timeout -1s: must not be negative"},
		{[]string{"demo", "--masters", "2"}, "", "masters: 2; want 3"},
		{[]string{"demo", "extra"}, "", "no arguments expected"},
		{[]string{"demo", "--nodes", "redis://a:1/0"}, "", "flag provided but not defined: -nodes"},
	} {
		var nodes []string
		if tc.env != "" {
			nodes = []string{tc.env}
		}
		r := run(t, nodes, tc.args...)
		r.want(t, 125, tc.want)
		if len(tc.args) > 0 && tc.args[0] != "help" && r.code == 125 && !strings.Contains(r.stderr, "Usage") {
			t.Errorf("distlock %q: stderr %q; want a usage line", tc.args, r.stderr)
		}
	}
}

// TestUnreachable: no master answers.
func TestUnreachable(t *testing.T) {
	run(t, nil, "run", "job", "--", "true").want(t, 123, "no master reachable")
	run(t, nil, "watch", "job").want(t, 123, "no master reachable")
	run(t, nil, "status", "job").want(t, 2, "no master reachable")
}

// TestErrorPrefixOnce: a library error ("distlock: no quorum of
// masters", "distlock: Config.TTL: ...") is quoted after distlock's own
// "distlock CMD: " without its prefix: the prefix comes once.
func TestErrorPrefixOnce(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // the first line of stderr starts with it
	}{
		{[]string{"run", "job", "--", "true"}, 123, "distlock run: no quorum of masters: no master reachable"},
		{[]string{"hold", "job"}, 123, "distlock hold: no quorum of masters: no master reachable"},
		{[]string{"watch", "job"}, 123, "distlock watch: no quorum of masters: no master reachable"},
		{[]string{"status", "job"}, 2, "distlock status: no quorum of masters: no master reachable"},
		{[]string{"run", "--ttl", "2ms", "job", "--", "true"}, 125, "distlock run: Config.TTL: TTL 2ms"},
	} {
		r := run(t, nil, tc.args...)
		r.want(t, tc.code)
		first, _, _ := strings.Cut(r.stderr, "\n")
		if !strings.HasPrefix(first, tc.want) || strings.Count(first, "distlock") != 1 {
			t.Errorf("distlock %q: stderr %q; want one line starting %q, with the prefix distlock once", tc.args, r.stderr, tc.want)
		}
	}
}

// TestMessages: the messages of bad durations, bad exit statuses, masters
// named twice, and a configuration error when no masters were given.
func TestMessages(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string // DISTLOCK_NODES
		want string
	}{
		{[]string{"run", "--ttl", "soon", "job", "--", "true"}, noMaster, "want a duration like 10s, 1m30s or 500ms, or a number of seconds"},
		{[]string{"run", "-w", "x", "job", "--", "true"}, noMaster, `invalid value "x" for flag -w: want a duration`},
		{[]string{"run", "-n", "-E", "256", "job", "--", "true"}, noMaster, "-E 256: want an exit status from 0 to 255"},
		{[]string{"run", "job", "--", "true"}, "redis://127.0.0.1:1/0,redis://localhost:1/0,[::1]:1", "masters 0 and 1 (redis://127.0.0.1:1/0, redis://localhost:1/0) are the same server"},
		{[]string{"run", "job", "--", "true"}, "redis://u:secret@127.0.0.1:1/0,,", "DISTLOCK_NODES: master 1 of"},
		{[]string{"run", "--nodes-file", "/no/such/file", "job", "--", "true"}, "", "--nodes-file /no/such/file: open /no/such/file: no such file or directory"},
		{[]string{"hold"}, noMaster, "missing lock NAME"},
		{[]string{"hold", "a", "--", "true"}, noMaster, "one lock NAME"},
	} {
		r := run(t, []string{tc.env}, tc.args...)
		r.want(t, 125, tc.want)
		if strings.Contains(r.stderr, "secret") {
			t.Errorf("distlock %q printed a password: %s", tc.args, r.stderr)
		}
	}

	// No masters given: the configuration error does not blame
	// DISTLOCK_NODES. (A TTL of 2ms is refused before any master is dialled.)
	cmd := distlockCmd(t, nil, "run", "--ttl", "2ms", "job", "--", "true")
	cmd.Env = append(cmd.Env, "DISTLOCK_NODES=")
	r := finish(t, cmd)
	r.want(t, 125, "TTL 2ms")
	if strings.Contains(r.stderr, "masters from") {
		t.Errorf("stderr %q names a source of masters; none was given", r.stderr)
	}
}
