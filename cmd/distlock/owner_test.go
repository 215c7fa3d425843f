package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatusOwner: status names who holds the lock, once per holder the
// table lists: the owner and metadata `hold --owner --metadata` stored,
// and a library Client's default owner (hostname:pid); --json gives them
// too.
func TestStatusOwner(t *testing.T) {
	_, nodes := startMasters(t, 3)
	cmd := distlockCmd(t, nodes, "hold", "--owner", "ops alice", "--metadata", "deploy 42 ✓", "st")
	_, stderr, wait := background(t, cmd)
	waitLine(t, stderr, `holding lock "st"`)
	// A majority is enough: a master whose answer to the acquire was late
	// (a busy CI machine) holds no key, and status must still name the
	// owner from the others.
	waitFor(t, "the lock held", func() bool {
		return run(t, nodes, "status", "st").code == 1
	})

	r := run(t, nodes, "status", "st")
	r.want(t, 1)
	holder := regexp.MustCompile(`(?m)^redis://\S+ +held +([0-9a-f]{8}) `).FindStringSubmatch(r.stdout)
	require.NotNil(t, holder, "status:\n%s", r.stdout)
	assert.Contains(t, r.stdout, "\nholder "+holder[1]+`: owner "ops alice", metadata "deploy 42 ✓"`+"\n", "status:\n%s", r.stdout)
	assert.Equal(t, 1, strings.Count(r.stdout, "\nholder "), "one holder line:\n%s", r.stdout)

	r = run(t, nodes, "status", "--json", "st")
	r.want(t, 1)
	var st statusJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	assert.Equal(t, "ops alice", st.Owner)
	assert.Equal(t, "deploy 42 ✓", st.Metadata)
	held := 0
	for i, m := range st.Masters {
		if !m.Held {
			continue
		}
		held++
		assert.Equal(t, "ops alice", m.Owner, "master %d", i)
		assert.Equal(t, "deploy 42 ✓", m.Metadata, "master %d", i)
	}
	assert.GreaterOrEqual(t, held, 2, "masters holding it: %s", r.stdout)
	cmd.Process.Signal(syscall.SIGINT)
	require.Equal(t, 0, wait())

	// A library Client's default owner; no metadata, none shown.
	host, err := os.Hostname()
	require.NoError(t, err)
	hold(t, nodes, "lib")
	r = run(t, nodes, "status", "lib")
	r.want(t, 1)
	assert.Regexp(t, fmt.Sprintf(`(?m)^holder [0-9a-f]{8}: owner %q$`, fmt.Sprintf("%s:%d", host, os.Getpid())), r.stdout)
}

// TestWatchOwner: watch --json gives the holder's owner and metadata, of
// `run --metadata`, whose owner is its own hostname:pid.
func TestWatchOwner(t *testing.T) {
	_, nodes := startMasters(t, 3)
	cmd := distlockCmd(t, nodes, "watch", "--json", "--timeout", "20s", "w")
	stdout, stderr, wait := background(t, cmd)
	waitLine(t, stderr, "watching w")
	run(t, nodes, "run", "--metadata", "job 7", "w", "--", "true").want(t, 0)
	for _, typ := range []string{"acquired", "released"} {
		var ev watchEvent
		require.NoError(t, json.Unmarshal([]byte(waitLine(t, stdout, `"type":"`+typ+`"`)), &ev))
		assert.Regexp(t, `^.+:\d+$`, ev.Owner, typ)
		assert.Equal(t, "job 7", ev.Metadata, typ)
	}
	cmd.Process.Signal(syscall.SIGINT)
	wait()
}

// TestOwnerFlagsUsage: an --owner or --metadata the library would refuse is
// a usage error, before any master is contacted.
func TestOwnerFlagsUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--owner", "a\nb", "x", "--", "true"}, `--owner "a\nb" contains U+000A, which is not printable`},
		{[]string{"hold", "--owner", strings.Repeat("o", 129), "x"}, "--owner of 129 bytes is longer than 128"},
		{[]string{"run", "--metadata", strings.Repeat("m", 513), "x", "--", "true"}, "--metadata of 513 bytes is longer than 512"},
	} {
		run(t, nil, c.args...).want(t, exitUsage, c.want)
	}
}

// TestReservedKeyUsage: a key prefix and NAME that together make one of
// distlock's own keys, or a key prefix the library refuses, is a usage
// error naming where the prefix came from, before any master is
// contacted (the masters here are unreachable: the error must come first).
func TestReservedKeyUsage(t *testing.T) {
	unreachable := []string{"127.0.0.1:1"}
	run(t, unreachable, "run", "--prefix", "distlock:fenc", "e:x", "--", "true").
		want(t, exitUsage, `lock key "distlock:fence:x" (key prefix "distlock:fenc" from --prefix, then NAME "e:x") is in a key space reserved`)
	for _, c := range []struct {
		prefix string
		args   []string
		want   string
	}{
		{"distlock:wa", []string{"status", "it:x"}, `(key prefix "distlock:wa" from $DISTLOCK_PREFIX, then NAME "it:x")`},
		{"a}", []string{"watch", "--timeout", "1", "x"}, `Config.KeyPrefix "a}" must not contain '{' or '}'`},
		{"a}", []string{"hold", "x"}, "(key prefix from $DISTLOCK_PREFIX)"},
	} {
		cmd := distlockCmd(t, unreachable, c.args...)
		cmd.Env = append(cmd.Env, "DISTLOCK_PREFIX="+c.prefix)
		finish(t, cmd).want(t, exitUsage, c.want)
	}
}
