package distlock_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// heldStatus waits until every master holds name with one value, and
// returns the Status that says so.
func heldStatus(t *testing.T, c *distlock.Client, name string) distlock.Status {
	t.Helper()
	var st distlock.Status
	eventually(t, "all masters hold "+name, func() bool {
		var err error
		st, err = c.Status(t.Context(), name)
		return err == nil && st.State == distlock.StateHeld && st.Agree == len(st.Masters)
	})
	return st
}

// By default a lease's owner is its process's hostname:pid, stored on
// every master after the lease's 128 random bits, and read back by Status;
// a lease without WithMetadata has none.
func TestOwnerDefault(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	l, err := c.Acquire(t.Context(), "owner/default")
	require.NoError(t, err)
	host, err := os.Hostname()
	require.NoError(t, err)
	want := fmt.Sprintf("%s:%d", host, os.Getpid())
	assert.Equal(t, want, l.Owner(), "Lease.Owner")
	assert.Empty(t, l.Metadata(), "Lease.Metadata")

	st := heldStatus(t, c, "owner/default")
	assert.Equal(t, want, st.Owner, "Status.Owner")
	assert.Empty(t, st.Metadata, "Status.Metadata")
	stored := regexp.MustCompile(`^[0-9a-f]{32}\|` + regexp.QuoteMeta(want) + `$`)
	for i, m := range st.Masters {
		assert.Equal(t, want, m.Owner, "master %d: Owner", i)
		assert.Regexp(t, stored, m.Value, "master %d: Value", i)
		assert.Equal(t, m.Value, keyValue(t, servers[i], "owner/default"), "master %d: Value is the key's", i)
	}
	require.NoError(t, l.Release(t.Context()))
	st, err = c.Status(t.Context(), "owner/default")
	require.NoError(t, err)
	assert.Equal(t, distlock.StateFree, st.State)
	assert.Empty(t, st.Owner, "Status.Owner of a free lock")
	noLockKeys(t, servers)
}

// A custom owner and a lease's metadata, spaces, separators, escapes and
// unicode included, reach Status and a watcher of another Client exactly
// as given, on the acquire and on the release; the stored value has no
// space in it.
func TestOwnerMetadataInStatusAndWatch(t *testing.T) {
	const name = "owner/custom"
	const owner = "billing worker 3 | naïve ✓"
	const meta = "job 42 %20 | 東京 🚀\ttab"
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{Owner: owner})
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), name)
	require.NoError(t, err)

	l, err := c.Acquire(t.Context(), name, distlock.WithMetadata(meta))
	require.NoError(t, err)
	assert.Equal(t, owner, l.Owner())
	assert.Equal(t, meta, l.Metadata())
	ev := next(t, events, 2*time.Second)
	assert.Equal(t, distlock.EventAcquired, ev.Type)
	assert.Equal(t, owner, ev.Owner, "acquired: Owner")
	assert.Equal(t, meta, ev.Metadata, "acquired: Metadata")

	st := heldStatus(t, w, name)
	assert.Equal(t, owner, st.Owner, "Status.Owner")
	assert.Equal(t, meta, st.Metadata, "Status.Metadata")
	for i, m := range st.Masters {
		assert.Equal(t, owner, m.Owner, "master %d", i)
		assert.Equal(t, meta, m.Metadata, "master %d", i)
		assert.NotContains(t, m.Value, " ", "master %d: stored value", i)
	}

	// A renewal sends the whole value again; it still matches.
	require.NoError(t, l.Extend(t.Context(), 5*time.Second))
	require.NoError(t, l.Err())
	require.NoError(t, l.Release(t.Context()))
	ev = next(t, events, 2*time.Second)
	assert.Equal(t, distlock.EventReleased, ev.Type)
	assert.Equal(t, owner, ev.Owner, "released: Owner")
	assert.Equal(t, meta, ev.Metadata, "released: Metadata")
	noLockKeys(t, servers)
}

// Config.Owner is checked by New, which names the field: at most 128
// bytes of printable UTF-8.
func TestOwnerInvalid(t *testing.T) {
	servers := masters(t, 1)
	for _, c := range []struct{ owner, want string }{
		{strings.Repeat("x", distlock.MaxOwnerLen+1), "Config.Owner of 129 bytes is longer than MaxOwnerLen (128)"},
		{"web-1\n", "Config.Owner \"web-1\\n\" contains U+000A, which is not printable"},
		{"tab\there", "Config.Owner \"tab\\there\" contains U+0009"},
		{"bad \xff", "Config.Owner \"bad \\xff\" is not valid UTF-8"},
	} {
		_, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers), Owner: c.owner})
		if assert.Error(t, err, "owner %q", c.owner) {
			assert.Contains(t, err.Error(), c.want, "owner %q", c.owner)
		}
	}
	// The longest owner, with a space and the separator, is fine.
	owner := "a |" + strings.Repeat("x", distlock.MaxOwnerLen-3)
	c := newClient(t, servers, distlock.Config{Owner: owner})
	l, err := c.TryAcquire(t.Context(), "owner/long")
	require.NoError(t, err)
	st := heldStatus(t, c, "owner/long")
	assert.Equal(t, owner, st.Owner)
	require.NoError(t, l.Release(t.Context()))
}

// WithMetadata longer than MaxMetadataLen fails Acquire, TryAcquire and
// Do at once, naming the option and the limit, and nothing is written to
// the masters; MaxMetadataLen bytes, every one escaped, are fine.
func TestMetadataTooLong(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	long := distlock.WithMetadata(strings.Repeat("m", distlock.MaxMetadataLen+1))
	const want = "WithMetadata: 513 bytes is longer than MaxMetadataLen (512)"
	_, err := c.Acquire(t.Context(), "meta/long", long)
	assert.ErrorContains(t, err, `distlock: acquire "meta/long": `+want)
	_, err = c.TryAcquire(t.Context(), "meta/long", long)
	assert.ErrorContains(t, err, want)
	ran := false
	err = c.Do(t.Context(), "meta/long", func(context.Context, *distlock.Lease) error { ran = true; return nil }, long)
	assert.ErrorContains(t, err, want)
	assert.False(t, ran, "Do ran fn")
	for _, s := range servers {
		keys, err := s.Do("KEYS", "*")
		require.NoError(t, err)
		assert.Empty(t, keys, "keys on %s after refused calls", s.Addr())
	}

	meta := strings.Repeat(" ", distlock.MaxMetadataLen) // each byte stored as %20
	l, err := c.Acquire(t.Context(), "meta/max", distlock.WithMetadata(meta))
	require.NoError(t, err)
	st := heldStatus(t, c, "meta/max")
	assert.Equal(t, meta, st.Metadata)
	require.NoError(t, l.Release(t.Context()))
	noLockKeys(t, servers)
}

// A value written by a distlock from before owners (32 hex digits alone)
// reads as held with owner and metadata "", in Status and in Watch; so
// does another program's value, which is no distlock lease's.
func TestOwnerOldFormatValue(t *testing.T) {
	servers := masters(t, 3)
	w := newClient(t, servers, distlock.Config{})
	for _, v := range []string{"0123456789abcdef0123456789abcdef", "not a lease"} {
		name := "owner/old/" + strings.ReplaceAll(v, " ", "-")
		events, err := w.Watch(t.Context(), name)
		require.NoError(t, err)
		for _, s := range servers {
			_, err := s.Do("SET", "distlock:"+name, v, "PX", "60000")
			require.NoError(t, err)
		}
		st := heldStatus(t, w, name)
		assert.Empty(t, st.Owner, "Status.Owner of %q", v)
		assert.Empty(t, st.Metadata, "Status.Metadata of %q", v)
		for i, m := range st.Masters {
			assert.Equal(t, v, m.Value, "master %d", i)
			assert.Empty(t, m.Owner, "master %d", i)
		}
		ev := next(t, events, 2*time.Second)
		assert.Equal(t, distlock.EventAcquired, ev.Type, "value %q", v)
		assert.Empty(t, ev.Owner, "value %q", v)
		assert.Empty(t, ev.Metadata, "value %q", v)
		for _, s := range servers {
			_, err := s.Do("DEL", "distlock:"+name)
			require.NoError(t, err)
		}
	}
}

// A lease handed to another goroutine of the same Client carries that
// goroutine's metadata, not the releasing lease's: with one goroutine
// waiting, the handoff writes its metadata and the lease is handed over
// in the handoff's round trip; with two waiting for different metadata,
// each lease still holds its own (the one the handoff did not guess takes
// the lock anew). The owner is the Client's throughout, and no lock key is
// left behind.
func TestMetadataHandoff(t *testing.T) {
	const name = "meta/handoff"
	servers := masters(t, 3)
	c := newObserved(t, servers, distlock.Config{Owner: "handoff-owner"})
	ctx := ctxTimeout(t, 20*time.Second)
	a, err := c.Acquire(ctx, name, distlock.WithMetadata("job a"))
	require.NoError(t, err)

	got := acquireLater(t, ctx, c.Client, name, distlock.WithMetadata("job b"))
	waitQueued(t, c.Client, name)
	require.NoError(t, a.Release(ctx))
	b := take(t, got, "waiter b")
	assert.Equal(t, "job b", b.Metadata())
	assert.Equal(t, "handoff-owner", b.Owner())
	st := heldStatus(t, c.Client, name)
	assert.Equal(t, "job b", st.Metadata, "Status after the handoff to b")
	assert.Equal(t, "handoff-owner", st.Owner)
	handed := 0
	for _, s := range c.spansNamed("distlock.acquire") {
		if v, ok := attr(s, "distlock.acquire.handoff"); ok && v.AsBool() {
			handed++
		}
	}
	assert.Equal(t, 1, handed, "acquires handed over")

	// Two waiters with different metadata: whichever takes the turn, its
	// lease and the keys say its own.
	gotC := acquireLater(t, ctx, c.Client, name, distlock.WithMetadata("job c"))
	gotD := acquireLater(t, ctx, c.Client, name, distlock.WithMetadata("job d"))
	eventually(t, "two goroutines waiting", func() bool { return distlock.Queued(c.Client, name) >= 3 })
	require.NoError(t, b.Release(ctx))
	for range 2 {
		var l *distlock.Lease
		select {
		case h := <-gotC:
			require.NoError(t, h.err)
			l = h.l
			assert.Equal(t, "job c", l.Metadata())
		case h := <-gotD:
			require.NoError(t, h.err)
			l = h.l
			assert.Equal(t, "job d", l.Metadata())
		case <-time.After(5 * time.Second):
			t.Fatal("no lease after 5s")
		}
		st := majorityHeldStatus(t, c.Client, name)
		assert.Equal(t, l.Metadata(), st.Metadata, "Status while %q holds", l.Metadata())
		assert.Equal(t, "handoff-owner", st.Owner)
		require.NoError(t, l.Release(ctx))
	}
	noLockKeys(t, servers)

	// A handoff that guessed wrong (made to, here): the waiter does not
	// take the lease over, and acquires anew with its own metadata. A
	// watcher sees the handoff's value come and go first.
	events, err := c.Watch(ctx, name)
	require.NoError(t, err)
	a, err = c.Acquire(ctx, name, distlock.WithMetadata("job a"))
	require.NoError(t, err)
	got = acquireLater(t, ctx, c.Client, name, distlock.WithMetadata("job y"))
	waitQueued(t, c.Client, name)
	distlock.WantMetadata(c.Client, name, "job x", 5)
	require.NoError(t, a.Release(ctx))
	y := take(t, got, "waiter y")
	assert.Equal(t, "job y", y.Metadata())
	st = majorityHeldStatus(t, c.Client, name)
	assert.Equal(t, "job y", st.Metadata, "Status after a wrong guess")
	var seen []string
	for len(seen) == 0 || seen[len(seen)-1] != "acquired job y" {
		if ev := next(t, events, 2*time.Second); ev.Type == distlock.EventAcquired {
			seen = append(seen, "acquired "+ev.Metadata)
		}
	}
	assert.Equal(t, []string{"acquired job a", "acquired job x", "acquired job y"}, seen, "holds a watcher saw")
	require.NoError(t, y.Release(ctx))
	noLockKeys(t, servers)
}
