package distlock_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/keyslot"
)

// TestStatusFreeHeldFree reads a lock before, while and after a lease
// holds it.
func TestStatusFreeHeldFree(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 20*time.Second)

	st, err := c.Status(ctx, "status/job")
	require.NoError(t, err, "Status")
	assert.Equal(t, distlock.StateFree, st.State, "before Acquire: State")
	assert.Equal(t, 3, st.Agree, "before Acquire: Agree")
	assert.Equal(t, 2, st.Quorum, "before Acquire: Quorum")
	assert.Zero(t, st.TTL, "before Acquire: TTL")
	require.Len(t, st.Masters, 3, "master entries")
	for i, m := range st.Masters {
		if m.Err != nil || m.Held || m.Value != "" || m.Fence != 0 || m.Addr != servers[i].URL() {
			t.Errorf("master %d before Acquire: got %+v; want free, fence 0, Addr %s", i, m, servers[i].URL())
		}
	}

	l, err := c.Acquire(ctx, "status/job", distlock.WithTTL(5*time.Second))
	require.NoError(t, err, "Acquire")
	// A straggler may still be granting when Acquire returns: wait until
	// all three masters hold the key.
	eventually(t, "all 3 masters hold the lock", func() bool {
		st, err = c.Status(ctx, "status/job")
		return err == nil && st.Agree == 3
	})
	assert.Equal(t, distlock.StateHeld, st.State, "while held: State")
	assert.Positive(t, st.TTL, "while held: TTL in (0, 5s]")
	assert.LessOrEqual(t, st.TTL, 5*time.Second, "while held: TTL in (0, 5s]")
	counter := int64(l.Token() >> 6)
	atCounter := 0
	for i, m := range st.Masters {
		if m.Err != nil || !m.Held || m.Value == "" || m.Value != st.Masters[0].Value || m.TTL <= 0 || m.TTL > 5*time.Second || m.Fence < 1 {
			t.Errorf("master %d while held: got %+v; want held by one value, TTL in (0, 5s], fence >= 1", i, m)
		}
		if m.Fence == counter {
			atCounter++
		}
	}
	assert.GreaterOrEqual(t, atCounter, 2, "fence counter %d (token %d) on %d masters; want a majority", counter, l.Token(), atCounter)

	require.NoError(t, l.Release(ctx), "Release")
	// Release returns once a majority deleted: the third delete may still
	// be on its way (a clean-clone CI run read 2 of 3).
	eventually(t, "all 3 masters free", func() bool {
		st, err = c.Status(ctx, "status/job")
		return err == nil && st.Agree == 3
	})
	assert.Equal(t, distlock.StateFree, st.State, "after Release: State")
	assert.Equal(t, 3, st.Agree, "after Release: Agree")
	for i, m := range st.Masters {
		assert.GreaterOrEqual(t, m.Fence, counter, "master %d after Release: fence; want >= %d (counters never go back)", i, counter)
	}
	noLockKeys(t, servers)
}

// TestStatusVerdict checks the majority's verdict on keys written
// directly: the TTL of a held lock is the Quorum-th longest, and masters
// that disagree make it unknown.
func TestStatusVerdict(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 20*time.Second)
	set := func(i int, value, px string) {
		t.Helper()
		_, err := servers[i].Do("SET", "distlock:status/v", value, "PX", px)
		require.NoError(t, err)
	}

	set(0, "a", "60000")
	set(1, "a", "30000")
	set(2, "a", "1000")
	st, err := c.Status(ctx, "status/v")
	require.NoError(t, err, "Status")
	assert.Equal(t, distlock.StateHeld, st.State, "held with TTLs 60s, 30s, 1s: State")
	assert.Equal(t, 3, st.Agree, "held with TTLs 60s, 30s, 1s: Agree")
	assert.Greater(t, st.TTL, 20*time.Second, "held with TTLs 60s, 30s, 1s: TTL; want about 30s")
	assert.LessOrEqual(t, st.TTL, 30*time.Second, "held with TTLs 60s, 30s, 1s: TTL; want about 30s")

	set(1, "b", "60000")
	_, err = servers[2].Do("DEL", "distlock:status/v")
	require.NoError(t, err)
	st, err = c.Status(ctx, "status/v")
	require.NoError(t, err, "Status")
	assert.Equal(t, distlock.StateUnknown, st.State, "a, b, free: State")
	assert.Equal(t, 1, st.Agree, "a, b, free: Agree")
	assert.Zero(t, st.TTL, "a, b, free: TTL")
	if st.Masters[0].Value != "a" || st.Masters[1].Value != "b" || st.Masters[2].Held {
		t.Errorf("a, b, free: got masters %+v", st.Masters)
	}

	set(2, "b", "60000")
	st, err = c.Status(ctx, "status/v")
	require.NoError(t, err)
	assert.Equal(t, distlock.StateHeld, st.State, "a, b, b: State")
	assert.Equal(t, 2, st.Agree, "a, b, b: Agree")

	// A key without expiry (another program's SET) counts as the longest:
	// beside keys that expire, the Quorum-th longest is one of those; on a
	// majority, the lock is held for ever (a negative TTL), not for 0s.
	_, err = servers[0].Do("SET", "distlock:status/v", "b")
	require.NoError(t, err)
	st, err = c.Status(ctx, "status/v")
	require.NoError(t, err)
	assert.Equal(t, distlock.StateHeld, st.State, "b without expiry, b: State")
	assert.Greater(t, st.TTL, 50*time.Second, "b without expiry, b with 60s: TTL; want about 60s")
	_, err = servers[2].Do("SET", "distlock:status/v", "b")
	require.NoError(t, err)
	st, err = c.Status(ctx, "status/v")
	require.NoError(t, err)
	assert.Negative(t, st.TTL, "b without expiry on 2 of 3 masters: TTL")

	// A key of the wrong type is that master's error, not the call's.
	_, err = servers[0].Do("DEL", "distlock:status/v")
	require.NoError(t, err)
	_, err = servers[0].Do("LPUSH", "distlock:status/v", "x")
	require.NoError(t, err)
	st, err = c.Status(ctx, "status/v")
	require.NoError(t, err, "wrong type on master 0")
	assert.Error(t, st.Masters[0].Err, "wrong type on master 0: master 0's error")
	assert.Equal(t, distlock.StateHeld, st.State, "wrong type on master 0: State")
	for _, s := range servers {
		s.Do("DEL", "distlock:status/v")
	}
}

// TestStatusMastersDown: unreachable or paused masters are reported in
// their entries, the verdict needs a majority, and nothing waits longer
// than DialTimeout.
func TestStatusMastersDown(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{DialTimeout: 500 * time.Millisecond})
	ctx := ctxTimeout(t, 20*time.Second)
	l, err := c.Acquire(ctx, "status/down")
	require.NoError(t, err, "Acquire")
	defer l.Release(ctx)
	// Acquire returns at a majority: with master 2 paused, the verdict
	// needs the key on masters 0 and 1 both.
	heldEverywhere(t, servers, "status/down")

	require.NoError(t, servers[2].Pause())
	defer servers[2].Resume()
	start := time.Now()
	st, err := c.Status(ctx, "status/down")
	assert.LessOrEqual(t, time.Since(start), 2*time.Second, "Status with a paused master; want about DialTimeout (500ms)")
	require.NoError(t, err, "master 2 paused")
	assert.Equal(t, distlock.StateHeld, st.State, "master 2 paused: State")
	assert.Error(t, st.Masters[2].Err, "master 2 paused: master 2's error")
	assert.False(t, st.Masters[2].Held, "master 2 paused: master 2 Held")

	require.NoError(t, servers[1].Kill())
	st, err = c.Status(ctx, "status/down")
	require.NoError(t, err, "one master of 3 answering")
	assert.Equal(t, distlock.StateUnknown, st.State, "one master of 3 answering: State")
	assert.Equal(t, 1, st.Agree, "one master of 3 answering: Agree")
	assert.Error(t, st.Masters[1].Err, "one master of 3 answering: master 1's error")
}

// TestStatusErrors: bad names, an ended ctx and a closed Client are the
// call's errors.
func TestStatusErrors(t *testing.T) {
	servers := masters(t, 1)
	c, err := distlock.New(distlock.Config{Nodes: redistest0(servers)})
	require.NoError(t, err)
	_, err = c.Status(t.Context(), "")
	assert.Error(t, err, "Status of an empty name")
	_, err = c.Status(t.Context(), "fence:x")
	assert.Error(t, err, "Status of a reserved name")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.Status(ctx, "status/e")
	assert.ErrorIs(t, err, context.Canceled, "Status with a cancelled ctx")
	c.Close()
	_, err = c.Status(t.Context(), "status/e")
	assert.ErrorIs(t, err, distlock.ErrClosed, "Status after Close")
}

func TestLockStateString(t *testing.T) {
	for s, want := range map[distlock.LockState]string{distlock.StateUnknown: "unknown", distlock.StateFree: "free", distlock.StateHeld: "held", 7: "LockState(7)"} {
		assert.Equal(t, want, s.String(), "LockState(%d).String()", int(s))
	}
}

// Status shows what each master holds for a lock, and the majority's
// verdict; a tool can print it, never decide from it to take the lock.
func ExampleClient_Status() {
	nodes, stop := masterURLs()
	defer stop()

	c, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	l, err := c.Acquire(ctx, "nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Status(ctx, "nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Name, st.State, "by a majority:", st.Agree >= st.Quorum)
	for _, m := range st.Masters {
		if m.Err == nil && m.Held && m.Value != "" {
			fmt.Println("a master holds it, expiring within the TTL:", m.TTL <= distlock.DefaultTTL)
			break
		}
	}

	l.Release(ctx)
	st, _ = c.Status(ctx, "nightly-report")
	fmt.Println(st.Name, st.State)
	// Output:
	// nightly-report held by a majority: true
	// a master holds it, expiring within the TTL: true
	// nightly-report free
}

// TestStatusFenceNotANumber: a fence counter that another program set to
// a string is reported unreadable, without the string: it can be of any
// size, and it is not distlock's to print (a CLI use test found all 5,000
// bytes of one in status --json's fence_error).
func TestStatusFenceNotANumber(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	fence := "distlock:fence:{" + keyslot.Tag(keyslot.Slot("distlock:x")) + "}"
	if _, err := servers[0].Do("SET", fence, strings.Repeat("a", 5000)); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctxTimeout(t, 5*time.Second), "x")
	if err != nil {
		t.Fatal(err)
	}
	ferr := st.Masters[0].FenceErr
	if ferr == nil {
		t.Fatal("master 0: a fence counter of 5,000 letters not reported")
	}
	if msg := ferr.Error(); len(msg) > 200 || strings.Contains(msg, "aaaa") || !strings.Contains(msg, "not an integer (a string of 5000 bytes)") {
		t.Errorf("master 0's FenceErr: %.300q; want it to say \"not an integer (a string of 5000 bytes)\", without the string", msg)
	}
	if st.Masters[1].FenceErr != nil {
		t.Errorf("master 1: FenceErr %v; its counter is unset", st.Masters[1].FenceErr)
	}
}
