package distlock_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/keyslot"
	"github.com/distlock/distlock/internal/redistest"
)

// Config.FenceReplicas (replicas.go) on the paths that draw or raise a
// counter besides the acquire: the local handoff and the write-back; and
// on a Cluster, where WAIT goes through a Dedicated connection. The masters
// here are primaries with a replica each, without Sentinels (nothing
// fails over): what is checked is which grants count.

// withReplicas starts n primaries, each with one replica in sync, and
// returns them.
func withReplicas(t *testing.T, n int) (primaries, replicas []*redistest.Server) {
	t.Helper()
	// No wait before a full sync (7.0 waits 5 s for more replicas).
	primaries = redistest.StartN(t, n, redistest.Options{Args: []string{"--repl-diskless-sync-delay", "0"}})
	for _, p := range primaries {
		port := p.Addr()[strings.LastIndexByte(p.Addr(), ':')+1:]
		replicas = append(replicas, redistest.StartN(t, 1, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", port}})[0])
	}
	for i, r := range replicas {
		waitSynced(t, r, primaries[i])
	}
	return primaries, replicas
}

// waitSynced waits until replica r is in sync with primary p, and p
// counts it in WAIT.
func waitSynced(t *testing.T, r, p *redistest.Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := redistest.InSync(r, p)
		if err == nil {
			return
		}
		require.True(t, time.Now().Before(deadline), "%v", err)
		time.Sleep(20 * time.Millisecond)
	}
}

// stall makes replica r stop applying what its primary sends until the
// test ends or unstall is called.
func stall(t *testing.T, r *redistest.Server) (unstall func()) {
	t.Helper()
	_, err := r.Do("CLIENT", "PAUSE", "20000", "WRITE")
	require.NoError(t, err)
	unstall = func() { r.Do("CLIENT", "UNPAUSE") }
	t.Cleanup(unstall)
	return unstall
}

// waits returns how many WAITs s has run (INFO commandstats).
func waits(t *testing.T, s *redistest.Server) int {
	t.Helper()
	out, err := s.Do("INFO", "commandstats")
	require.NoError(t, err)
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_wait:calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// Masters without replicas never count with FenceReplicas 1: no token is
// handed out, and the keys the attempt set are deleted. Without the
// option nothing of WAIT is sent.
func TestFenceReplicasWithoutReplicas(t *testing.T) {
	servers := masters(t, 3)
	ctx := ctxTimeout(t, 10*time.Second)
	plain := newClient(t, servers, distlock.Config{})
	l, err := plain.TryAcquire(ctx, "job")
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx))
	for i, s := range servers {
		assert.Zero(t, waits(t, s), "master %d ran WAIT without FenceReplicas", i)
	}

	c := newClient(t, servers, distlock.Config{FenceReplicas: 1})
	_, err = c.TryAcquire(ctx, "job")
	require.ErrorIs(t, err, distlock.ErrNoQuorum)
	var qe *distlock.QuorumError
	require.ErrorAs(t, err, &qe)
	failed := 0
	for i, e := range qe.Errs {
		if e != nil {
			failed++
			assert.ErrorIs(t, e, distlock.ErrNotReplicated, "master %d", i)
			assert.ErrorContains(t, e, "0 of 1 replicas")
		}
	}
	assert.GreaterOrEqual(t, failed, 2)
	noLockKeys(t, servers)
}

// A local handoff draws its token with WAIT too: with two replicas
// stalled it cannot count on a majority, the lock is released instead
// and the waiting goroutine gets it only once the replicas have caught
// up. A write-back (the counters had drifted apart) raises counters with
// WAIT as well: the master whose replica lags counts for no majority.
func TestFenceReplicasHandoffAndWriteBack(t *testing.T) {
	primaries, replicas := withReplicas(t, 3)
	c := newClient(t, primaries, distlock.Config{FenceReplicas: 1, TTL: 2 * time.Second, NodeTimeout: 100 * time.Millisecond})
	ctx := ctxTimeout(t, 20*time.Second)

	// Handoff, replicas in step: the next goroutine takes the keys over.
	l1, err := c.Acquire(ctx, "job")
	require.NoError(t, err)
	before := waits(t, primaries[0])
	got := make(chan *distlock.Lease, 1)
	go func() {
		l, err := c.Acquire(ctx, "job")
		assert.NoError(t, err)
		got <- l
	}()
	eventually(t, "a second goroutine waiting", func() bool { return distlock.Queued(c, "job") == 2 })
	require.NoError(t, l1.Release(ctx))
	l2 := <-got
	require.NotNil(t, l2)
	assert.Greater(t, l2.Token(), l1.Token())
	assert.Greater(t, waits(t, primaries[0]), before, "the handoff ran WAIT")

	// Handoff with the replicas of masters 0 and 1 stalled: no majority
	// acknowledges a counter, so the waiter gets nothing until they
	// catch up.
	un0, un1 := stall(t, replicas[0]), stall(t, replicas[1])
	go func() {
		l, err := c.Acquire(ctx, "job")
		assert.NoError(t, err)
		got <- l
	}()
	eventually(t, "a second goroutine waiting", func() bool { return distlock.Queued(c, "job") == 2 })
	require.NoError(t, l2.Release(ctx))
	select {
	case l := <-got:
		t.Fatalf("a lease with token %d while no majority's replicas acknowledge", l.Token())
	case <-time.After(500 * time.Millisecond):
	}
	un0()
	un1()
	var l3 *distlock.Lease
	select {
	case l3 = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no lease 5s after the replicas caught up")
	}
	assert.Greater(t, l3.Token(), l2.Token())
	require.NoError(t, l3.Release(ctx))

	// Write-back: master 2's counter is ahead (set there, and
	// replicated), so the lease's counter comes from it and is written
	// back to masters 0 and 1, where master 1's replica lags.
	fence := "distlock:fence:{" + keyslot.Tag(keyslot.Slot("distlock:job")) + "}"
	ahead := counter(t, primaries[2]) + 100
	_, err = primaries[2].Do("SET", fence, strconv.FormatInt(ahead, 10))
	require.NoError(t, err)
	eventually(t, "the counter replicated", func() bool { return counter(t, replicas[2]) == ahead })
	stall(t, replicas[1])
	l4, err := c.Acquire(ctx, "job")
	require.NoError(t, err)
	assert.Equal(t, uint64(ahead+1)<<6|2, l4.Token(), "the token carries master 2's counter")
	assert.GreaterOrEqual(t, counter(t, replicas[0]), ahead+1, "master 0's replica had the written-back counter when the lease was handed out")
	// The write-back returns at a majority: master 1's answer may come later.
	eventually(t, "master 1's write-back not acknowledged", func() bool {
		st, err := c.Status(ctx, "job")
		return err == nil && errors.Is(st.Masters[1].LastError, distlock.ErrNotReplicated)
	})
	require.NoError(t, l4.Release(ctx))
}

// On a Cluster, the script and WAIT go through a Dedicated connection to
// the slot's node: the Cluster grants while its shard's replica keeps up,
// and counts for no majority while it lags.
func TestFenceReplicasOnCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: true})
	primaries, _ := withReplicas(t, 2)
	c := newNodesClient(t, []rueidis.ClientOption{clusterNode(cl), plainNode(primaries[0]), plainNode(primaries[1])},
		distlock.Config{FenceReplicas: 1, TTL: 2 * time.Second, NodeTimeout: 200 * time.Millisecond})
	ctx := ctxTimeout(t, 20*time.Second)
	slot := int(keyslot.Slot("distlock:job"))
	owner, err := cl.Owner(slot)
	require.NoError(t, err)

	held := func() distlock.MasterStatus {
		l, err := c.TryAcquire(ctx, "job")
		require.NoError(t, err)
		require.NoError(t, l.Extend(ctx, 2*time.Second)) // hears out the acquire's last answers
		st, err := c.Status(ctx, "job")
		require.NoError(t, err)
		require.NoError(t, l.Release(ctx))
		return st.Masters[0]
	}
	m := held()
	assert.True(t, m.Held, "the Cluster granted: %v", m.LastError)
	assert.Positive(t, waits(t, owner), "the slot's node ran WAIT")

	r, err := cl.Replica(owner)
	require.NoError(t, err)
	stall(t, r)
	m = held()
	assert.ErrorIs(t, m.LastError, distlock.ErrNotReplicated)
}
