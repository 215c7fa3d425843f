package conformance_test

// The behavioural tests of go-redsync/redsync's mutex_test.go, on distlock.
//
// redsync runs every test once per Redis driver it supports (redigo, four
// go-redis versions, rueidis: makeCases in redsync_test.go), each against its
// own block of 4 or 8 servers. distlock has one driver (rueidis), so each
// test runs once, against as many masters as the original. A redsync Mutex
// is one lock name with its options; Client.Acquire and TryAcquire take the
// name and options per call, and return a Lease where redsync keeps the
// state in the Mutex.

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// redsyncTTL is redsync's default expiry (8s), which its tests keep.
const redsyncTTL = 8 * time.Second

// Ported from go-redsync/redsync, mutex_test.go, TestMutex: 8 masters, 8
// mutexes locking at once (Lock), each checking that its lock is held on a
// quorum, then unlocking. As in the original, each mutex has a name of its
// own (newTestMutexes appends "-i"); a distinct Client stands for each
// mutex's process. The "same name" subtest is the contended form the
// original's naming hides: the 8 Clients wait for one name, and each,
// once it holds it, must be the only holder and hold it on a quorum.
func TestRedsyncMutex(t *testing.T) {
	t.Parallel()
	servers := masters(t, 8)
	cs := clients(t, servers, 8, distlock.Config{})
	run := func(t *testing.T, nameOf func(i int) string) {
		var e exclusive
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Go(func() {
				name := nameOf(i)
				l, err := c.Acquire(t.Context(), name, distlock.WithTTL(redsyncTTL))
				if !assert.NoError(t, err, "mutex lock failed") {
					return
				}
				e.enter(l.Token())
				assertHeldByQuorum(t, c, servers, name)
				e.leave()
				assert.NoError(t, l.Release(t.Context()))
			})
		}
		wg.Wait()
		if nameOf(0) == nameOf(1) {
			e.check(t)
		}
	}
	t.Run("own names", func(t *testing.T) {
		run(t, func(i int) string { return "test-mutex-" + strconv.Itoa(i) })
	})
	t.Run("same name", func(t *testing.T) {
		run(t, func(int) string { return "test-mutex-shared" })
	})
	noLockKeys(t, servers)
}

// Ported from go-redsync/redsync, mutex_test.go, TestTryLock: 8 masters, 8
// mutexes each making single attempts (TryLockContext) until it holds its
// lock, then Extend, which must succeed, and the lock must be held on a
// quorum. The original's retry loop never calls TryLock again (it sleeps
// 100ms in a loop on the first error, forever); here a failed TryAcquire
// (ErrLocked) is retried after 100ms, as the original evidently means. Each
// mutex has its own name, as in the original.
func TestRedsyncTryLock(t *testing.T) {
	t.Parallel()
	servers := masters(t, 8)
	cs := clients(t, servers, 8, distlock.Config{})
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			name := "test-trylock-" + strconv.Itoa(i)
			var l *distlock.Lease
			for {
				var err error
				l, err = c.TryAcquire(t.Context(), name, distlock.WithTTL(redsyncTTL))
				if err == nil {
					break
				}
				if !assert.ErrorIs(t, err, distlock.ErrLocked) {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			defer func() { assert.NoError(t, l.Release(t.Context())) }()
			assert.NoError(t, l.Extend(t.Context(), redsyncTTL), "extend failed")
			assertHeldByQuorum(t, c, servers, name)
		})
	}
	wg.Wait()
	noLockKeys(t, servers)
}

// Ported from go-redsync/redsync, mutex_test.go, TestMutexAlreadyLocked: 4
// masters; one mutex locks, and a second mutex of the same Redsync (same
// process) fails TryLock with *ErrTaken. distlock answers ErrLocked, inside
// a *QuorumError whose Locked reports it; the second attempt is made both
// by the same Client (the original's case: it fails without asking the
// masters, since its own lease holds the name) and by another Client
// (another process: it asks the masters). redsync's ErrTaken lists the
// nodes that hold the lock, at least a quorum of them; distlock decides as
// soon as other holders put a majority out of reach (2 of 4 masters here),
// so Held is at least 2.
func TestRedsyncMutexAlreadyLocked(t *testing.T) {
	t.Parallel()
	servers := masters(t, 4)
	c1 := newClient(t, redistest.URLs(servers), distlock.Config{})
	c2 := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name = "test-lock"
	l, err := c1.Acquire(t.Context(), name, distlock.WithTTL(redsyncTTL))
	require.NoError(t, err, "mutex lock failed")
	assertHeldByQuorum(t, c1, servers, name)

	for who, c := range map[string]*distlock.Client{"same Client": c1, "another Client": c2} {
		l2, err := c.TryAcquire(t.Context(), name, distlock.WithTTL(redsyncTTL))
		assert.Nil(t, l2, who)
		assert.ErrorIs(t, err, distlock.ErrLocked, "%s: mutex was not already locked", who)
		if who == "another Client" {
			var qe *distlock.QuorumError
			if assert.ErrorAs(t, err, &qe, who) {
				assert.True(t, qe.Locked(), "QuorumError.Locked")
				assert.GreaterOrEqual(t, qe.Held, len(servers)-qe.Needed+1, "masters reported held by another")
				assert.Zero(t, qe.Granted, "masters granted")
			}
		}
	}
	// The failed attempts took nothing from the holder.
	assert.NoError(t, l.Err())
	assertHeldByQuorum(t, c1, servers, name)
	require.NoError(t, l.Release(t.Context()))
}

// Ported from go-redsync/redsync, mutex_test.go, TestMutexExtend: 8 masters;
// lock, wait 1s, read every master's PTTL, Extend, which must succeed; every
// master's PTTL must then be larger than before. Extend returns once a
// majority renewed; the other masters answer a moment later, so they are
// given 2s. The lease renews itself every TTL/3 (2.7s here), not within the
// 1s, so the PTTLs read before Extend have gone down by about 1s.
func TestRedsyncMutexExtend(t *testing.T) {
	t.Parallel()
	servers := masters(t, 8)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name = "test-mutex-extend"
	l, err := c.Acquire(t.Context(), name, distlock.WithTTL(redsyncTTL))
	require.NoError(t, err, "mutex lock failed")
	defer l.Release(t.Context())

	time.Sleep(time.Second)

	before := pttls(t, servers, name)
	for i, ms := range before {
		require.Less(t, ms, int(redsyncTTL/time.Millisecond)-500, "master %d renewed within the first second", i)
	}
	require.NoError(t, l.Extend(t.Context(), redsyncTTL), "mutex extend failed")
	require.NoError(t, l.Err(), "Expected a valid mutex")
	assert.Eventually(t, func() bool {
		after := pttls(t, servers, name)
		for i := range after {
			if after[i] <= before[i] {
				return false
			}
		}
		return true
	}, 2*time.Second, 10*time.Millisecond, "every master's PTTL larger after Extend than the %v before", before)
}

// Ported from go-redsync/redsync, mutex_test.go, TestMutexExtendExpired: a
// mutex with a 500ms expiry, locked, then 1s later Extend must fail, for
// the lock has expired. A distlock lease renews itself: left alone for 1s
// it is still held and Extend succeeds ("renewing" subtest). The original's
// case is a holder that could not renew ("not renewed"): its Client is cut
// off from every master for 1s, twice the TTL; Redis expires the keys, the
// lease is lost (Err), and once the masters are reachable again Extend
// fails with ErrLeaseLost: a lost lease never comes back.
func TestRedsyncMutexExtendExpired(t *testing.T) {
	t.Parallel()
	servers := masters(t, 8)
	const ttl = 500 * time.Millisecond
	t.Run("renewing", func(t *testing.T) {
		c := newClient(t, redistest.URLs(servers), distlock.Config{})
		l, err := c.Acquire(t.Context(), "test-mutex-extend-renewing", distlock.WithTTL(ttl))
		require.NoError(t, err, "mutex lock failed")
		defer l.Release(t.Context())
		time.Sleep(time.Second)
		require.NoError(t, l.Err(), "lease renewing itself lost after twice its TTL")
		require.NoError(t, l.Extend(t.Context(), ttl))
	})
	t.Run("not renewed", func(t *testing.T) {
		c := newPartitionable(t, servers, distlock.Config{})
		const name = "test-mutex-extend-expired"
		l, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
		require.NoError(t, err, "mutex lock failed")
		defer l.Release(t.Context())
		c.cut()
		time.Sleep(time.Second)
		waitNoKey(t, servers, name, time.Second) // Redis expired them
		c.restore()
		err = l.Extend(t.Context(), ttl)
		require.Error(t, err, "mutex extend didn't fail")
		require.ErrorIs(t, err, distlock.ErrLeaseLost)
		require.Zero(t, keysHeld(t, servers, name), "a failed Extend wrote keys")
	})
}

// Ported from go-redsync/redsync, mutex_test.go,
// TestSetNXOnExtendAcquiresLockWhenKeyIsExpired: with WithSetNXOnExtend, a
// mutex whose keys expired (500ms expiry, 1s sleep) takes them again in
// Extend when they are free. distlock has no such option on purpose: a
// lease that lapsed has had its Done closed and its Err set, and work it
// guarded was told to stop; taking the keys back under the same lease
// would break "a lease ends once" and the fencing token's order (another
// holder may have come and gone in the gap). So Extend of the expired lease
// fails with ErrLeaseLost, and the way back is a new acquire, which
// succeeds on the free keys with a larger token.
func TestRedsyncSetNXOnExtendWhenKeyIsExpired(t *testing.T) {
	t.Parallel()
	servers := masters(t, 8)
	c := newPartitionable(t, servers, distlock.Config{})
	const name, ttl = "test-mutex-setnx-expired", 500 * time.Millisecond
	l, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
	require.NoError(t, err, "mutex lock failed")
	defer l.Release(t.Context())
	c.cut()
	time.Sleep(time.Second)
	waitNoKey(t, servers, name, time.Second)
	c.restore()

	require.ErrorIs(t, l.Extend(t.Context(), ttl), distlock.ErrLeaseLost)
	// Acquire, not TryAcquire: the connections the cut closed are dialled
	// again now, and one attempt's per-master timeout (a tenth of the
	// 500ms TTL) can run out first on a loaded machine (it did in CI).
	l2, err := c.Acquire(ctxTimeout(t, 3*time.Second), name, distlock.WithTTL(ttl))
	require.NoError(t, err, "acquiring the expired lock again")
	defer l2.Release(t.Context())
	require.Greater(t, l2.Token(), l.Token())
	assertHeldByQuorum(t, c.Client, servers, name)
}

// Ported from go-redsync/redsync, mutex_test.go,
// TestSetNXOnExtendFailsToAcquireLockWhenKeyIsTaken: a first mutex's keys
// expire (500ms, 1s sleep), a second mutex locks, and the first's Extend
// must fail (ok false, an error). Here the first holder is cut off from the
// masters while its keys expire, another Client acquires, and the first's
// Extend fails with ErrLeaseLost, leaving the second's lease and keys
// untouched; the second's token is the larger.
func TestRedsyncSetNXOnExtendWhenKeyIsTaken(t *testing.T) {
	t.Parallel()
	servers := masters(t, 8)
	first := newPartitionable(t, servers, distlock.Config{})
	second := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name, ttl = "test-mutex-setnx-taken", 500 * time.Millisecond
	l1, err := first.Acquire(t.Context(), name, distlock.WithTTL(ttl))
	require.NoError(t, err, "mutex lock failed")
	defer l1.Release(t.Context())
	first.cut()
	time.Sleep(time.Second)

	l2, err := second.Acquire(ctxTimeout(t, 2*time.Second), name, distlock.WithTTL(ttl))
	require.NoError(t, err, "second mutex couldn't lock")
	defer l2.Release(t.Context())
	held := values(t, servers, name)
	first.restore()

	require.ErrorIs(t, l1.Extend(t.Context(), ttl), distlock.ErrLeaseLost, "mutex extend didn't fail")
	require.NoError(t, l2.Err())
	require.Greater(t, l2.Token(), l1.Token())
	// The second holder's keys stay; a master that had not yet answered
	// its acquire when held was read may have its value since (a
	// straggler), but never another.
	var v2 string
	for _, v := range held {
		if v != "" {
			v2 = v
		}
	}
	after := values(t, servers, name)
	for i := range held {
		if held[i] != "" && after[i] != held[i] || after[i] != "" && after[i] != v2 {
			t.Errorf("the failed Extend changed the second holder's keys: master %d was %q, is %q", i, held[i], after[i])
		}
	}
}

// Ported from go-redsync/redsync, mutex_test.go, TestMutexUnlockExpired:
// 500ms expiry, lock, 1s sleep, Unlock must fail (ok false, an error:
// ErrLockAlreadyExpired). A lease that renews itself is still held after
// 1s, and Release succeeds ("renewing"); a second Release returns nil
// (redsync's deferred second Unlock would fail instead). The holder that
// could not renew ("not renewed", cut off from the masters for 1s) gets
// ErrLeaseLost from Release: the holder learns that its section may not
// have been exclusive.
func TestRedsyncMutexUnlockExpired(t *testing.T) {
	t.Parallel()
	servers := masters(t, 8)
	const ttl = 500 * time.Millisecond
	t.Run("renewing", func(t *testing.T) {
		c := newClient(t, redistest.URLs(servers), distlock.Config{})
		const name = "test-mutex-unlock-renewing"
		l, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
		require.NoError(t, err, "mutex lock failed")
		time.Sleep(time.Second)
		require.NoError(t, l.Release(t.Context()))
		require.ErrorIs(t, l.Err(), distlock.ErrReleased)
		require.NoError(t, l.Release(t.Context()), "second Release")
		noLockKeys(t, servers)
	})
	t.Run("not renewed", func(t *testing.T) {
		c := newPartitionable(t, servers, distlock.Config{})
		const name = "test-mutex-unlock-expired"
		l, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
		require.NoError(t, err, "mutex lock failed")
		c.cut()
		time.Sleep(time.Second)
		waitNoKey(t, servers, name, time.Second)
		c.restore()
		err = l.Release(t.Context())
		require.Error(t, err, "mutex unlock didn't fail")
		require.ErrorIs(t, err, distlock.ErrLeaseLost)
	})
}

// Ported from go-redsync/redsync, mutex_test.go, TestMutexQuorum: 4 masters;
// for each of the 16 subsets, the lock key is set by someone else
// ("foobar", no expiry) on the masters of the subset, and a single attempt
// (tries = 1) must succeed, and hold on a quorum, when at least 3 masters
// are free. The original's assertion for the other case is inverted
// (errors.Is(err, &ErrNodeTaken{}) then Fatal) and so checks nothing; here
// the attempt must fail with ErrLocked, and the keys it may have set on
// the free masters must be deleted, while the other holder's stay.
func TestRedsyncMutexQuorum(t *testing.T) {
	t.Parallel()
	servers := masters(t, 4)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	for mask := range 1 << len(servers) {
		name := "test-mutex-partial-" + strconv.Itoa(mask)
		free := 0
		for i, s := range servers {
			if mask&(1<<i) == 0 {
				free++
				continue
			}
			_, err := s.Do("SET", key(name), "foobar")
			require.NoError(t, err)
		}
		l, err := c.TryAcquire(t.Context(), name, distlock.WithTTL(redsyncTTL))
		if free >= len(servers)/2+1 {
			require.NoError(t, err, "mask %04b: mutex lock failed", mask)
			assertHeldByQuorum(t, c, servers, name)
			require.NoError(t, l.Release(t.Context()))
		} else {
			require.Nil(t, l)
			require.ErrorIs(t, err, distlock.ErrLocked, "mask %04b", mask)
		}
		// Whatever happened, only the other holder's keys remain.
		assert.Eventually(t, func() bool {
			for i, v := range values(t, servers, name) {
				want := ""
				if mask&(1<<i) != 0 {
					want = "foobar"
				}
				if v != want {
					return false
				}
			}
			return true
		}, 2*time.Second, 10*time.Millisecond, "mask %04b: keys left behind or taken from the other holder", mask)
	}
}

// Ported from go-redsync/redsync, mutex_test.go, TestValid: 4 masters; a
// mutex with a 1h expiry locks, holds on a quorum, Valid reports true, and a
// second mutex of the same Redsync cannot Lock (all 32 tries, 50-250ms
// apart, about 5s). Valid's counterpart is Err (checked against the local
// validity, not by asking the masters; Status asks them). A distlock
// Acquire waits until its ctx ends, not for a number of tries: 500ms here
// (scaled down from redsync's ~5s), from the same Client (it queues behind
// its own lease) and from another (it asks the masters); both fail with
// ErrLocked joined with the ctx's error.
func TestRedsyncValid(t *testing.T) {
	t.Parallel()
	servers := masters(t, 4)
	c1 := newClient(t, redistest.URLs(servers), distlock.Config{})
	c2 := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name = "test-shared-lock"
	l, err := c1.Acquire(t.Context(), name, distlock.WithTTL(time.Hour))
	require.NoError(t, err, "mutex lock failed")
	defer l.Release(t.Context())
	assertHeldByQuorum(t, c1, servers, name)

	require.NoError(t, l.Err(), "Expected a valid mutex")
	st, err := c1.Status(t.Context(), name)
	require.NoError(t, err)
	require.Equal(t, distlock.StateHeld, st.State)
	require.InDelta(t, time.Hour.Seconds(), st.TTL.Seconds(), 5)

	for who, c := range map[string]*distlock.Client{"same Client": c1, "another Client": c2} {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		l2, err := c.Acquire(ctx, name)
		cancel()
		require.Nil(t, l2, "%s: second mutex locked a held lock", who)
		require.ErrorIs(t, err, distlock.ErrLocked, who)
		require.ErrorIs(t, err, context.DeadlineExceeded, who)
	}
	require.NoError(t, l.Err())
}

// Ported from go-redsync/redsync, mutex_test.go, TestMutexLockUnlockSplit: a
// mutex locks, and a second mutex built with WithValue(first.Value()) — in
// another process, say — unlocks it. distlock does not export a lease's
// random value and has no WithValue: the value is what proves ownership to
// the masters, and a lease belongs to the Client that took it
// (TestSecurityContenderCannotRelease in the root package). Within the
// process the Lease itself is what moves: any goroutine can release it.
// That is what this port checks; the release must succeed and leave no
// key.
func TestRedsyncMutexLockUnlockSplit(t *testing.T) {
	t.Parallel()
	servers := masters(t, 4)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name = "test-split-lock"
	l, err := c.Acquire(t.Context(), name, distlock.WithTTL(time.Hour))
	require.NoError(t, err, "mutex lock failed")
	assertHeldByQuorum(t, c, servers, name)

	done := make(chan error, 1)
	go func() { done <- l.Release(context.Background()) }()
	require.NoError(t, <-done, "mutex unlock failed")
	require.ErrorIs(t, l.Err(), distlock.ErrReleased)
	noLockKeys(t, servers)
	// The lock is free for anyone else at once.
	other := newClient(t, redistest.URLs(servers), distlock.Config{})
	l2, err := other.TryAcquire(t.Context(), name)
	require.NoError(t, err)
	require.NoError(t, l2.Release(t.Context()))
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
