package distlock_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Sentinel-managed groups as masters (docs/deployments.md).

// sentinelNode is the NodeOptions entry of a Sentinel-managed group.
func sentinelNode(g *redistest.SentinelGroup) rueidis.ClientOption {
	return rueidis.ClientOption{
		InitAddress: g.SentinelAddrs(),
		Sentinel:    rueidis.SentinelOption{MasterSet: g.Name},
	}
}

// plainNode is the NodeOptions entry of a lone server.
func plainNode(s *redistest.Server) rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{s.Addr()}, ForceSingleClient: true}
}

// newNodesClient returns a Client over nodes, closed when the test ends.
func newNodesClient(t *testing.T, nodes []rueidis.ClientOption, cfg distlock.Config) *distlock.Client {
	t.Helper()
	cfg.NodeOptions = nodes
	c, err := distlock.New(cfg)
	require.NoError(t, err, "New")
	t.Cleanup(func() { assert.NoError(t, c.Close(), "Close") })
	return c
}

// pttl returns key's PTTL on s in milliseconds.
func pttl(t *testing.T, s *redistest.Server, key string) int64 {
	t.Helper()
	out, err := s.Do("PTTL", key)
	require.NoError(t, err)
	n, err := strconv.ParseInt(out, 10, 64)
	require.NoError(t, err)
	return n
}

// extender checks that renewals of a lease reach a given server.
type extender struct{ ttl time.Duration }

// renewsOn checks that l's key is on s and that the Client renews it
// there: it asks for a TTL longer than every one asked before (Extend)
// until s reports more than the previous one, which only a renewal that
// reached s can do. (Background renewals get there too, every TTL/3, if
// the key lasts till then: docs/deployments.md.)
func (e *extender) renewsOn(t *testing.T, ctx context.Context, what string, l *distlock.Lease, s *redistest.Server, key string) {
	t.Helper()
	require.Positive(t, pttl(t, s, key), "%s: the key is on %s", what, s.Addr())
	prev := e.ttl
	e.ttl += time.Second
	deadline := time.Now().Add(3 * time.Second)
	for {
		require.NoError(t, l.Extend(ctx, e.ttl), "%s: Extend", what)
		if pttl(t, s, key) > prev.Milliseconds() {
			break
		}
		require.True(t, time.Now().Before(deadline), "%s: no renewal reached %s within 3s", what, s.Addr())
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, l.Err(), "%s: the lease is held", what)
}

// A lease held while its group's primary fails over, by SENTINEL FAILOVER
// and then by a kill, stays held: its key was replicated, the Client
// follows the Sentinels to the new primary and renews the key there, and
// the next lease's token is larger. Master 0 is the group, masters 1 and 2
// lone servers.
func TestSentinelFailoverKeepsLease(t *testing.T) {
	g := redistest.StartSentinelGroup(t, redistest.SentinelOptions{})
	plain := masters(t, 2)
	const ttl = 8 * time.Second
	c := newNodesClient(t, []rueidis.ClientOption{sentinelNode(g), plainNode(plain[0]), plainNode(plain[1])}, distlock.Config{TTL: ttl})
	ctx := ctxTimeout(t, 40*time.Second)
	const key = "distlock:job"

	l, err := c.Acquire(ctx, "job")
	require.NoError(t, err)
	st, err := c.Status(ctx, "job")
	require.NoError(t, err)
	value := st.Masters[1].Value
	require.NotEmpty(t, value)
	require.Equal(t, value, st.Masters[0].Value, "the group's primary holds the lease's key")
	replica, err := g.Replica()
	require.NoError(t, err)
	eventually(t, "the key replicated", func() bool {
		v, _ := replica.Do("GET", key)
		return v == value
	})

	ext := extender{ttl: ttl}
	renewedOn := func(what string, p *redistest.Server) {
		t.Helper()
		ext.renewsOn(t, ctx, what, l, p, key)
		st, err := c.Status(ctx, "job")
		require.NoError(t, err)
		require.NoError(t, st.Masters[0].Err)
		assert.Equal(t, value, st.Masters[0].Value, "%s: master 0 holds the lease", what)
		assert.Equal(t, distlock.StateHeld, st.State)
		assert.Equal(t, 3, st.Agree, "%s: every master holds the lease", what)
	}

	start := time.Now()
	p, err := g.Failover()
	require.NoError(t, err)
	t.Logf("SENTINEL FAILOVER took %v", time.Since(start))
	renewedOn("after SENTINEL FAILOVER", p)

	require.NoError(t, g.WaitReady())
	start = time.Now()
	p, _, err = g.KillPrimary()
	require.NoError(t, err)
	t.Logf("failover after a kill took %v", time.Since(start))
	renewedOn("after the primary was killed", p)

	require.NoError(t, l.Release(ctx))
	// Release returns at a majority; the rest follow.
	eventually(t, "Release deleting the key on the new primary", func() bool {
		v, err := p.Do("GET", key)
		return err == nil && v == ""
	})
	l2, err := c.TryAcquire(ctx, "job")
	require.NoError(t, err)
	assert.Greater(t, l2.Token(), l.Token())
	require.NoError(t, l2.Release(context.Background()))
}

// failoverAll fails every group over at once (SENTINEL FAILOVER), with
// the writes its replica had not applied lost, and returns the new
// primaries.
func failoverAll(t *testing.T, groups []*redistest.SentinelGroup) []*redistest.Server {
	t.Helper()
	ps := make([]*redistest.Server, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { ps[i], errs[i] = g.Failover() })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	return ps
}

// stallReplicas stalls each group's replica (StallReplica): the next
// failover to it loses every write since. It returns the replicas.
func stallReplicas(t *testing.T, groups []*redistest.SentinelGroup) []*redistest.Server {
	t.Helper()
	rs := make([]*redistest.Server, len(groups))
	for i, g := range groups {
		require.NoError(t, g.WaitReady())
		r, err := g.StallReplica()
		require.NoError(t, err)
		rs[i] = r
		t.Cleanup(func() { g.Unstall() })
	}
	return rs
}

// fence returns the fence counter of name's slot on each group's primary.
func fences(t *testing.T, c *distlock.Client, name string) []int64 {
	t.Helper()
	st, err := c.Status(context.Background(), name)
	require.NoError(t, err)
	f := make([]int64, len(st.Masters))
	for i, m := range st.Masters {
		require.NoError(t, m.Err)
		f[i] = m.Fence
	}
	return f
}

// Replication is asynchronous: a failover to a replica that had not
// applied the latest fence counter increments loses them, and the next
// token is no larger than one already handed out. With FenceReplicas,
// no token is handed out before a replica has its counter: while the
// replicas lag the acquires fail, and after the failover tokens keep
// rising. Three masters, each a Sentinel group whose replica is stalled
// (CLIENT PAUSE WRITE) before every primary is failed over.
func TestSentinelTokensAcrossLossyFailover(t *testing.T) {
	groups := redistest.StartSentinelGroups(t, 3, redistest.SentinelOptions{})
	nodes := make([]rueidis.ClientOption, len(groups))
	for i, g := range groups {
		nodes[i] = sentinelNode(g)
	}
	ctx := ctxTimeout(t, 40*time.Second)
	cfg := distlock.Config{TTL: 2 * time.Second, NodeTimeout: 200 * time.Millisecond}
	take := func(c *distlock.Client) uint64 {
		t.Helper()
		l, err := c.Acquire(ctx, "fenced")
		require.NoError(t, err)
		require.NoError(t, l.Release(ctx))
		return l.Token()
	}
	// landed waits until every master has run take's acquire and release
	// (they return at a majority): a straggler landing after a replica is
	// stalled, or after fences read the counters, would count once too
	// often. Status goes on the Client's one connection per master, behind
	// the acquire (handed to it when take's Acquire began): once it finds
	// no key anywhere, the release landed there too.
	landed := func(c *distlock.Client) {
		t.Helper()
		eventually(t, "every master has run the acquire and the release", func() bool {
			st, err := c.Status(ctx, "fenced")
			if err != nil {
				return false
			}
			for _, m := range st.Masters {
				if m.Err != nil || m.Held {
					return false
				}
			}
			return true
		})
	}

	t.Run("without FenceReplicas tokens go back", func(t *testing.T) {
		c := newNodesClient(t, nodes, cfg)
		take(c)
		landed(c)
		replicas := stallReplicas(t, groups)
		var handed uint64
		for range 3 {
			handed = max(handed, take(c))
		}
		landed(c)
		before := fences(t, c, "fenced")
		ps := failoverAll(t, groups)
		for i, p := range ps {
			require.Same(t, replicas[i], p, "group %d failed over to its stalled replica", i)
		}
		after := fences(t, c, "fenced")
		for i := range before {
			assert.Equal(t, before[i]-3, after[i], "master %d lost the 3 increments its replica had not applied", i)
		}
		got := take(c)
		t.Logf("token after the failover %d; handed out before it up to %d", got, handed)
		assert.LessOrEqual(t, got, handed, "the token went back")
	})

	t.Run("with FenceReplicas tokens keep rising", func(t *testing.T) {
		cfg := cfg
		cfg.FenceReplicas = 1
		c := newNodesClient(t, nodes, cfg)
		handed := take(c)

		// One group's replica lags: its master's counter counts for no
		// token, the other two grant, and its failover loses nothing
		// handed out.
		stallReplicas(t, groups[:1])
		l, err := c.Acquire(ctx, "fenced")
		require.NoError(t, err)
		assert.Greater(t, l.Token(), handed)
		assert.NotZero(t, l.Token()&63, "the token's counter came from master 1 or 2, not master 0")
		handed = l.Token()
		eventually(t, "master 0 reported ErrNotReplicated", func() bool {
			st, err := c.Status(ctx, "fenced")
			return err == nil && errors.Is(st.Masters[0].LastError, distlock.ErrNotReplicated)
		})
		require.NoError(t, l.Release(ctx))
		failoverAll(t, groups[:1])
		handed = max(handed, take(c))

		// Every replica lags: no token at all.
		replicas := stallReplicas(t, groups)
		for range 2 {
			l, err := c.TryAcquire(ctx, "fenced")
			require.Error(t, err, "no token while no replica acknowledges its counter")
			require.Nil(t, l)
			assert.ErrorIs(t, err, distlock.ErrNoQuorum)
			var qe *distlock.QuorumError
			require.ErrorAs(t, err, &qe)
			// It fails once two masters have (the third's answer is
			// not waited for).
			failed := 0
			for i, e := range qe.Errs {
				if e != nil {
					failed++
					assert.ErrorIs(t, e, distlock.ErrNotReplicated, "master %d", i)
				}
			}
			assert.GreaterOrEqual(t, failed, 2)
			// And the keys it set are deleted again, in the background.
			eventually(t, "the failed attempt's keys deleted", func() bool {
				st, err := c.Status(ctx, "fenced")
				return err == nil && st.State == distlock.StateFree && st.Agree == 3
			})
		}
		ps := failoverAll(t, groups)
		for i, p := range ps {
			require.Same(t, replicas[i], p, "group %d failed over to its stalled replica", i)
		}
		got := take(c)
		t.Logf("token after the failover %d; handed out before it up to %d", got, handed)
		assert.Greater(t, got, handed, "tokens keep rising")
		// And they go on rising, each acknowledged by a replica.
		assert.Greater(t, take(c), got)
	})
}
