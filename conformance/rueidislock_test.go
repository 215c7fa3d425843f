package conformance_test

// The behavioural tests of redis/rueidis's rueidislock (rueidislock/lock_test.go),
// on distlock.
//
// rueidislock keeps KeyMajority*2-1 keys (3 by default) for one lock, all on
// the Redis its one client connects to; its tests use one server. Here each
// test starts 3 masters, a lock's keys being one on each. WithContext is
// Acquire (waiting); TryWithContext is TryAcquire; the context it returns,
// cancelled when the lock is lost, is Lease.Context, and its cancel
// function, which releases the lock, is Lease.Release. A Locker is a
// Client.
//
// rueidislock runs most tests in up to six modes (CLIENT TRACKING with and
// without NOLOOP, SET PX instead of PXAT, client-side caching on or off):
// internals with no distlock counterpart, so each test runs once. The
// nearest counterpart of "client-side caching off" (waiters wake on a timer)
// is Config.SkipNotifyConfig on masters without keyspace notifications
// (waiters wake on the messages distlock's own scripts publish, and on
// backoff); the tests of many contending lockers run both ways.

import (
	"context"
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

// notifyModes are the two ways waiters learn that a lock came free:
// keyspace notifications that distlock configures (the default), or none.
var notifyModes = []struct {
	name string
	cfg  distlock.Config
}{
	{"notifications", distlock.Config{}},
	{"no notifications", distlock.Config{SkipNotifyConfig: true}},
}

// Ported from redis/rueidis, rueidislock/lock_test.go, TestNewLocker: a
// Locker without an address fails to build; one with defaults has a 5s
// validity and a majority of 2 of 3 keys. distlock: NodeOptions without
// InitAddress is refused by New; a lease's default TTL is DefaultTTL (10s,
// renewed every TTL/3, where rueidislock extends every validity/2), and on
// 3 masters the quorum is 2.
func TestRueidislockNewLocker(t *testing.T) {
	t.Parallel()
	_, err := distlock.New(distlock.Config{NodeOptions: []rueidis.ClientOption{{InitAddress: nil}}})
	require.Error(t, err)

	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	l, err := c.TryAcquire(t.Context(), "defaults")
	require.NoError(t, err)
	defer l.Release(t.Context())
	require.Equal(t, distlock.DefaultTTL, l.TTL())
	st, err := c.Status(t.Context(), "defaults")
	require.NoError(t, err)
	require.Equal(t, 2, st.Quorum)
	require.Len(t, st.Masters, 3)
	require.Equal(t, 3, st.Agree)
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestNewLocker_WithClientBuilder: the Locker builds its rueidis client
// with the caller's ClientBuilder and exports it (Client()). distlock
// builds one rueidis client per master itself and does not export them;
// what the caller controls is each client's rueidis.ClientOption
// (Config.NodeOptions). The port builds a Client from NodeOptions and
// locks with it.
func TestRueidislockNewLockerWithClientBuilder(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	opts := make([]rueidis.ClientOption, len(servers))
	for i, s := range servers {
		opts[i] = rueidis.ClientOption{InitAddress: []string{s.Addr()}}
	}
	c, err := distlock.New(distlock.Config{NodeOptions: opts})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	l, err := c.TryAcquire(t.Context(), "builder")
	require.NoError(t, err)
	assertHeldByQuorum(t, c, servers, "builder")
	require.NoError(t, l.Release(t.Context()))
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_MultipleLocker: 10 Lockers, each taking the same
// lock 100 times in a row (WithContext, then cancel); each must count 100.
// Scaled down to 30 times each (300 acquisitions per mode instead of 1000),
// run with and without keyspace notifications. Added: at most one holder
// at a time, and each holder's token larger than the previous one's.
func TestRueidislockMultipleLocker(t *testing.T) {
	t.Parallel()
	const cnt = 30
	for _, mode := range notifyModes {
		t.Run(mode.name, func(t *testing.T) {
			servers := masters(t, 3)
			lockers := clients(t, servers, 10, mode.cfg)
			sum := make([]int, len(lockers))
			var e exclusive
			var wg sync.WaitGroup
			for i, c := range lockers {
				wg.Go(func() {
					for range cnt {
						l, err := c.Acquire(ctxTimeout(t, 20*time.Second), "multiple-locker")
						if !assert.NoError(t, err) {
							return
						}
						e.enter(l.Token())
						sum[i]++
						e.leave()
						assert.NoError(t, l.Release(t.Context()))
					}
				})
			}
			wg.Wait()
			for i, s := range sum {
				require.Equal(t, cnt, s, "locker %d", i)
			}
			e.check(t)
		})
	}
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_UnlockByClientSideCaching: another client deletes
// the lock's keys on a majority; the lock's context is cancelled
// (context.Canceled). rueidislock hears of the delete at once, by
// client-side caching; distlock's lease finds the keys gone at its next
// renewal (every TTL/3: 500ms here), and ends with ErrLeaseLost, which is
// the cause of Lease.Context's cancellation.
func TestRueidislockUnlockByOtherClient(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name, ttl = "unlock-by-other", 1500 * time.Millisecond
	l, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
	require.NoError(t, err)
	ctx, cancel := l.Context(context.Background())
	defer cancel()
	onEveryMaster(t, servers, name)

	start := time.Now()
	go func() {
		for _, s := range servers[:2] {
			_, err := s.Do("DEL", key(name))
			assert.NoError(t, err)
		}
	}()
	select {
	case <-ctx.Done():
	case <-time.After(ttl):
		require.FailNow(t, "lease context not cancelled a TTL after a majority of its keys were deleted")
	}
	t.Logf("lease lost %v after the deletes", time.Since(start))
	require.ErrorIs(t, ctx.Err(), context.Canceled)
	require.ErrorIs(t, context.Cause(ctx), distlock.ErrLeaseLost)
	require.ErrorIs(t, l.Err(), distlock.ErrLeaseLost)
}

// Ported from redis/rueidis, rueidislock/lock_test.go, the four tests of
// ForceWithContext: TestLocker_WithContext_UnlockBySelfForceWithContext,
// TestLocker_WithContext_UnlockByOtherForceWithContext,
// TestLocker_ForceWithContext_UnlockBySelfForceWithContext and
// TestLocker_ForceWithContext_UnlockByOtherForceWithContext. A lock (taken
// by WithContext or ForceWithContext) is taken over by ForceWithContext,
// of the same Locker or another, and the first holder's context is
// cancelled. distlock has no forced takeover: breaking a lock is an
// operator's act outside the protocol (redis-cli SET on the masters), and
// what the holder must see is the same: its lease ends with ErrLeaseLost
// (at the next renewal), and its Release leaves the new owner's keys alone.
// The original's four variants collapse into one, run once for a lease
// from Acquire and once for one from TryAcquire.
func TestRueidislockForcedTakeover(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	for _, how := range []string{"Acquire", "TryAcquire"} {
		t.Run(how, func(t *testing.T) {
			name := "forced-" + how
			var l *distlock.Lease
			var err error
			if how == "Acquire" {
				l, err = c.Acquire(t.Context(), name, distlock.WithTTL(1500*time.Millisecond))
			} else {
				l, err = c.TryAcquire(t.Context(), name, distlock.WithTTL(1500*time.Millisecond))
			}
			require.NoError(t, err)
			ctx, cancel := l.Context(context.Background())
			defer cancel()
			go func() {
				for _, s := range servers {
					_, err := s.Do("SET", key(name), "forced", "PX", "60000")
					assert.NoError(t, err)
				}
			}()
			select {
			case <-ctx.Done():
			case <-time.After(1500 * time.Millisecond):
				require.FailNow(t, "lease context not cancelled a TTL after its keys were taken over")
			}
			require.ErrorIs(t, ctx.Err(), context.Canceled)
			require.ErrorIs(t, l.Err(), distlock.ErrLeaseLost)
			require.ErrorIs(t, l.Release(t.Context()), distlock.ErrLeaseLost)
			require.Equal(t, []string{"forced", "forced", "forced"}, values(t, servers, name))
		})
	}
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_ExtendByClientSideCaching: another client
// shortens the expiry of a majority of the lock's keys to 100ms; rueidislock
// hears of it by client-side caching and extends them again at once, so a
// second later the lock's context is still alive. distlock differs: its
// lease does not watch its own keys; it renews them (only where they still
// hold its value) every TTL/3, and finds them gone at the next renewal:
// the lease ends with ErrLeaseLost within a second here (TTL 1.5s) instead
// of surviving. Keys that vanish early stand, in distlock's own safety
// account, for a clock jump on the masters, a fault outside its guarantee
// (README, Safety).
//
// Subtest "no overlap" asks for more: that no other Client can take the
// lock while the first lease's Err is still nil. It fails: between the
// keys' early expiry and the next renewal (up to TTL/3) another Client
// acquires while the first lease still reports itself held. It is skipped
// unless DISTLOCK_CONFORMANCE_KNOWN_BUGS is set.
func TestRueidislockExtendByOtherClient(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	const ttl = 1500 * time.Millisecond
	t.Run("lost at next renewal", func(t *testing.T) {
		c := newClient(t, redistest.URLs(servers), distlock.Config{})
		const name = "extend-by-other"
		l, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
		require.NoError(t, err)
		ctx, cancel := l.Context(context.Background())
		defer cancel()
		onEveryMaster(t, servers, name)
		for _, s := range servers[:2] {
			_, err := s.Do("PEXPIRE", key(name), "100")
			require.NoError(t, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			require.FailNow(t, "lease still held a second after a majority of its keys expired")
		}
		require.ErrorIs(t, context.Cause(ctx), distlock.ErrLeaseLost)
		require.ErrorIs(t, l.Release(t.Context()), distlock.ErrLeaseLost)
	})
	t.Run("no overlap", func(t *testing.T) {
		knownBug(t, "a lease whose keys vanish early reports itself held until its next renewal, while another Client can acquire")
		c := newClient(t, redistest.URLs(servers), distlock.Config{})
		other := newClient(t, redistest.URLs(servers), distlock.Config{})
		const name = "extend-by-other-overlap"
		l, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
		require.NoError(t, err)
		defer l.Release(t.Context())
		onEveryMaster(t, servers, name)
		for _, s := range servers[:2] {
			_, err := s.Do("PEXPIRE", key(name), "100")
			require.NoError(t, err)
		}
		time.Sleep(150 * time.Millisecond)
		l2, err := other.Acquire(ctxTimeout(t, ttl), name)
		require.NoError(t, err)
		defer l2.Release(t.Context())
		require.Error(t, l.Err(), "two leases report themselves held at once")
	})
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_AutoExtendConcurrent: a lock of 1s validity
// (extended every 0.5s) is held for 4 seconds, its context alive at each
// second; meanwhile WithContext of the same lock on the same Locker waits,
// and returns once the first is released: then the first context is
// cancelled and the second alive. Scaled down: TTL 500ms, held 4 x 500ms.
func TestRueidislockAutoExtendConcurrent(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name, ttl = "auto-extend-concurrent", 500 * time.Millisecond
	l1, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
	require.NoError(t, err)
	ctx1, cancel1 := l1.Context(context.Background())
	defer cancel1()
	go func() {
		for range 4 {
			select {
			case <-ctx1.Done():
				assert.Fail(t, "lease ended while renewing", "%v", context.Cause(ctx1))
			default:
				time.Sleep(ttl)
			}
		}
		assert.NoError(t, l1.Release(context.Background()))
	}()
	start := time.Now()
	l2, err := c.Acquire(ctxTimeout(t, 10*ttl), name, distlock.WithTTL(ttl))
	require.NoError(t, err)
	defer l2.Release(t.Context())
	require.GreaterOrEqual(t, time.Since(start), 4*ttl-50*time.Millisecond, "second Acquire returned while the first held")
	require.ErrorIs(t, ctx1.Err(), context.Canceled)
	require.ErrorIs(t, l1.Err(), distlock.ErrReleased)
	require.NoError(t, l2.Err())
	require.Greater(t, l2.Token(), l1.Token())
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_AutoExtend: a lock of 2s validity (extended every
// 1s) is held for 2 x 2s, its context alive throughout. Scaled down: TTL
// 500ms, held 2 x 500ms; the keys must still have a TTL on every master.
func TestRueidislockAutoExtend(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name, ttl = "auto-extend", 500 * time.Millisecond
	l, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
	require.NoError(t, err)
	defer l.Release(t.Context())
	ctx, cancel := l.Context(context.Background())
	defer cancel()
	for range 2 {
		select {
		case <-ctx.Done():
			require.FailNow(t, "lease ended while renewing", "%v", context.Cause(ctx))
		default:
			time.Sleep(ttl)
		}
	}
	require.NoError(t, ctx.Err())
	for i, ms := range pttls(t, servers, name) {
		require.Greater(t, ms, 0, "master %d", i)
	}
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_DeadContext: WithContext with a cancelled context
// fails with context.Canceled. So do Acquire, TryAcquire and Do, at once.
func TestRueidislockDeadContext(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Acquire(ctx, "dead")
	require.ErrorIs(t, err, context.Canceled)
	_, err = c.TryAcquire(ctx, "dead")
	require.ErrorIs(t, err, context.Canceled)
	err = c.Do(ctx, "dead", func(context.Context, *distlock.Lease) error {
		t.Error("Do ran fn with a cancelled context")
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	noLockKeys(t, servers)
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_CancelContext: a lock is held, and 100 goroutines
// wait for it on the same Locker with the lock's own context as their
// parent; 3s later the lock is released, which cancels that context, and
// every waiter fails with context.Canceled. Here the waiters' context is
// Lease.Context, and Release ends it; none may get a lease (a Release hands
// the lock to a waiting goroutine of its Client, but never to one whose
// context has ended). Scaled down: 300ms instead of 3s.
func TestRueidislockCancelContext(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name = "cancel-context"
	l, err := c.Acquire(t.Context(), name)
	require.NoError(t, err)
	ctx, cancel := l.Context(context.Background())
	defer cancel()

	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			l2, err := c.Acquire(ctx, name)
			assert.ErrorIs(t, err, context.Canceled)
			if err == nil {
				l2.Release(context.Background())
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, l.Release(t.Context()))
	wg.Wait()
	require.ErrorIs(t, ctx.Err(), context.Canceled)
	noLockKeys(t, servers)
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_ShorterTimeoutContext: WithContext with a parent
// context of 1s timeout: the lock's context ends with the parent
// (DeadlineExceeded after 2s) though the lock's validity is 5s. distlock
// differs on purpose: the ctx of Acquire bounds the wait, never the lease,
// which stays held (and renewed) after ctx ended; a context that ends with
// both is Lease.Context(ctx), which does end with DeadlineExceeded.
// Scaled down: 200ms and 400ms.
func TestRueidislockShorterTimeoutContext(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name = "shorter-timeout"
	parent, cancelParent := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelParent()
	l, err := c.Acquire(parent, name, distlock.WithTTL(5*time.Second))
	require.NoError(t, err)
	defer l.Release(t.Context())
	ctx, cancel := l.Context(parent)
	defer cancel()

	time.Sleep(400 * time.Millisecond)
	require.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	require.NoError(t, l.Err(), "the lease ended with the ctx of Acquire")
	require.Equal(t, 3, keysHeld(t, servers, name))
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_TryWithContext: TryWithContext takes a free lock, and a second
// TryWithContext of the same Locker fails with ErrNotLocked. Here the
// second TryAcquire fails with ErrLocked. (TestLocker_ForceWithContextThenTryWithContext,
// the same after a forced take, has no counterpart: see
// TestRueidislockForcedTakeover.)
func TestRueidislockTryWithContext(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	l, err := c.TryAcquire(t.Context(), "try")
	require.NoError(t, err)
	ctx, cancel := l.Context(context.Background())
	defer cancel()
	l2, err := c.TryAcquire(ctx, "try")
	require.ErrorIs(t, err, distlock.ErrLocked)
	require.Nil(t, l2)
	require.NoError(t, l.Release(t.Context()))
	require.ErrorIs(t, ctx.Err(), context.Canceled)
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_TryWithContext_MultipleLocker: 10 Lockers, each taking the
// same lock 1000 times by single attempts (TryWithContext, 1ms sleep after
// ErrNotLocked); each must count 1000. Scaled down to 30 times each, run
// with and without keyspace notifications. Added: at most one holder at a
// time, tokens rising.
func TestRueidislockTryWithContextMultipleLocker(t *testing.T) {
	t.Parallel()
	const cnt = 30
	for _, mode := range notifyModes {
		t.Run(mode.name, func(t *testing.T) {
			servers := masters(t, 3)
			lockers := clients(t, servers, 10, mode.cfg)
			sum := make([]int, len(lockers))
			var e exclusive
			var wg sync.WaitGroup
			for i, c := range lockers {
				wg.Go(func() {
					for range cnt {
						for {
							l, err := c.TryAcquire(t.Context(), "try-multiple-locker")
							if err != nil {
								if !assert.ErrorIs(t, err, distlock.ErrLocked) {
									return
								}
								time.Sleep(time.Millisecond)
								continue
							}
							e.enter(l.Token())
							sum[i]++
							// A lease that ended before its holder left would
							// explain a token out of order without an overlap.
							assert.NoError(t, l.Err(), "lease with token %d ended while its holder was inside", l.Token())
							e.leave()
							assert.NoError(t, l.Release(t.Context()))
							break
						}
					}
				})
			}
			wg.Wait()
			for i, s := range sum {
				require.Equal(t, cnt, s, "locker %d", i)
			}
			e.check(t)
		})
	}
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_MissingPeers: 100 rounds of: take the lock, start
// 100 waiters of the same Locker with the lock's context as parent, release
// the lock; every waiter fails with context.Canceled. (The original also
// pokes the Locker's internal gate; there is no counterpart.) After the
// last round, nothing is left on the masters.
func TestRueidislockMissingPeers(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name = "missing-peers"
	for range 100 {
		l, err := c.Acquire(ctxTimeout(t, 5*time.Second), name)
		require.NoError(t, err)
		ctx, cancel := l.Context(context.Background())
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				l2, err := c.Acquire(ctx, name)
				assert.ErrorIs(t, err, context.Canceled)
				if err == nil {
					l2.Release(context.Background())
				}
			})
		}
		require.NoError(t, l.Release(t.Context()))
		wg.Wait()
		cancel()
	}
	noLockKeys(t, servers)
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_WithContext_Cleanup: a waiter whose context is cancelled (after
// 1s) fails with context.Canceled, and the Locker keeps no state for the
// lock (its gates map is empty). distlock's state for a name lives on the
// masters too (master 0's waiting list): once the waiter gave up and the
// holder released, no key but the fence counter is left. The waiter is of
// another Client here, so that it joins the waiting list on the masters.
// Scaled down: 200ms.
func TestRueidislockCleanup(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	holder := newClient(t, redistest.URLs(servers), distlock.Config{})
	waiter := newClient(t, redistest.URLs(servers), distlock.Config{})
	const name = "cleanup"
	l, err := holder.Acquire(t.Context(), name)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	l2, err := waiter.Acquire(ctx, name)
	require.ErrorIs(t, err, context.Canceled)
	require.Nil(t, l2)
	require.NoError(t, l.Release(t.Context()))
	noLockKeys(t, servers)
}

// Ported from redis/rueidis, rueidislock/lock_test.go, TestLocker_Close: a
// lock is held, 10 goroutines wait for it on the same Locker; 1s later the
// Locker is closed: every waiter fails with ErrLockerClosed, the lock's
// context is cancelled, and a later WithContext fails with
// ErrLockerClosed. Here: ErrClosed, Done closed with Err wrapping
// ErrReleased and ErrClosed, and the keys deleted. Scaled down: 200ms.
func TestRueidislockClose(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers)})
	require.NoError(t, err)
	const name = "close"
	l, err := c.Acquire(t.Context(), name)
	require.NoError(t, err)
	ctx, cancel := l.Context(context.Background())
	defer cancel()

	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			_, err := c.Acquire(context.Background(), name)
			assert.ErrorIs(t, err, distlock.ErrClosed)
		})
	}
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, c.Close())
	wg.Wait()
	<-ctx.Done()
	require.ErrorIs(t, ctx.Err(), context.Canceled)
	require.ErrorIs(t, l.Err(), distlock.ErrReleased)
	require.ErrorIs(t, l.Err(), distlock.ErrClosed)
	_, err = c.Acquire(context.Background(), name)
	require.ErrorIs(t, err, distlock.ErrClosed)
	noLockKeys(t, servers)
}

// Ported from redis/rueidis, rueidislock/lock_test.go,
// TestLocker_RetryErrLockerClosed: while a WithContext waits, the Locker is
// told its connection was lost (onInvalidations(nil), an internal hook)
// every second, and the lock is released; the waiter must still get the
// lock, without error. Here the waiter is a Client whose connections to
// every master are cut (for 300ms) while it waits, then restored; the
// holder, another Client, releases; the waiter must get the lock.
func TestRueidislockRetryAfterConnectionLost(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	holder := newClient(t, redistest.URLs(servers), distlock.Config{})
	waiter := newPartitionable(t, servers, distlock.Config{})
	const name = "retry-connection-lost"
	l, err := holder.Acquire(t.Context(), name)
	require.NoError(t, err)

	got := make(chan error, 1)
	go func() {
		l2, err := waiter.Acquire(ctxTimeout(t, 10*time.Second), name)
		if err == nil {
			err = l2.Release(context.Background())
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	waiter.cut()
	time.Sleep(300 * time.Millisecond)
	waiter.restore()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, l.Release(t.Context()))
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(3 * time.Second):
		require.FailNow(t, "waiter did not get the lock 3s after its release")
	}
}

// Ported from redis/rueidis, rueidislock/lock_test.go, TestLocker_Flush:
// FLUSHDB while a lock is held cancels the lock's context, and the Locker
// can still take another lock. Here FLUSHDB runs on every master: the lease
// finds its keys gone at its next renewal (TTL/3: 500ms) and ends with
// ErrLeaseLost; a new lock is then taken. (FLUSHDB also drops the fence
// counters, so tokens may start again lower: the README's Safety section
// says masters must keep their data.)
func TestRueidislockFlush(t *testing.T) {
	t.Parallel()
	servers := masters(t, 3)
	c := newClient(t, redistest.URLs(servers), distlock.Config{})
	l, err := c.Acquire(t.Context(), "flush", distlock.WithTTL(1500*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := l.Context(context.Background())
	defer cancel()
	for _, s := range servers {
		_, err := s.Do("FLUSHDB")
		require.NoError(t, err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(1500 * time.Millisecond):
		require.FailNow(t, "lease context not cancelled a TTL after FLUSHDB")
	}
	require.ErrorIs(t, ctx.Err(), context.Canceled)
	require.ErrorIs(t, l.Err(), distlock.ErrLeaseLost)

	l2, err := c.Acquire(ctxTimeout(t, 5*time.Second), "flush-"+strconv.Itoa(2))
	require.NoError(t, err)
	require.NoError(t, l2.Release(t.Context()))
}
