package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	goredsync "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"

	"github.com/distlock/distlock"
)

// TTL is the lease TTL every peer is given in the latency, throughput,
// handoff and allocation workloads (distlock's default).
const TTL = 10 * time.Second

// PollInterval is the retry delay of the peers that wait by polling
// (redsync, bsm/redislock): fixed, as issue 4 measured bsm/redislock with.
// distlock and rueidislock are woken by notifications instead.
const PollInterval = 10 * time.Millisecond

// A Lock is a held lock of any peer.
type Lock interface {
	Release(ctx context.Context) error
}

// A Locker is one instance of a peer (a Client, a Locker, a pool set),
// safe for concurrent use.
type Locker interface {
	// Acquire waits until name is held or ctx ends. The lock must not
	// depend on ctx staying alive until Release (rueidislock ties its lock
	// to the context it is given, so callers cancel ctx only after
	// Release).
	Acquire(ctx context.Context, name string) (Lock, error)
	Close()
}

// A Peer is one lock implementation, set up on the first Masters of the
// run's redis-server masters.
type Peer struct {
	ID      string // short name: "distlock-3"
	Label   string // row label in the table
	Masters int
	// Open makes one instance on addrs (host:port, len(addrs) == Masters).
	// ttl is the lease TTL; renew, when positive, the renewal interval for
	// the peers that renew by themselves.
	Open func(addrs []string, ttl, renew time.Duration) (Locker, error)
	// KeyPrefix starts every key this peer's locks put on a master; once a
	// workload is over no such key may remain (distlock's permanent fence
	// counters, under "distlock:fence:", excepted).
	KeyPrefix string
}

// Peers returns every peer. distlock and the floor come for 3 and 5
// masters, redsync for 3 and 5, the single-node peers for one.
func Peers() []Peer {
	return []Peer{
		{ID: "floor-3", Label: "floor: raw rueidis, 3 masters", Masters: 3, Open: openFloor, KeyPrefix: "floor:"},
		{ID: "distlock-3", Label: "distlock, 3 masters", Masters: 3, Open: openDistlock, KeyPrefix: "distlock:"},
		{ID: "redsync-3", Label: "redsync v4 + go-redis v9, 3 masters", Masters: 3, Open: openRedsync, KeyPrefix: "redsync:"},
		{ID: "redislock-1", Label: "bsm/redislock, 1 node", Masters: 1, Open: openRedislock, KeyPrefix: "redislock:"},
		{ID: "rueidislock-1", Label: "rueidislock, 1 node", Masters: 1, Open: openRueidislock, KeyPrefix: "rueidislock:"},
		{ID: "rueidislock-1-noloop", Label: "rueidislock, 1 node, NoLoopTracking", Masters: 1, Open: openRueidislockNoLoop, KeyPrefix: "rueidislock:"},
		{ID: "floor-5", Label: "floor: raw rueidis, 5 masters", Masters: 5, Open: openFloor, KeyPrefix: "floor:"},
		{ID: "distlock-5", Label: "distlock, 5 masters", Masters: 5, Open: openDistlock, KeyPrefix: "distlock:"},
		{ID: "redsync-5", Label: "redsync v4 + go-redis v9, 5 masters", Masters: 5, Open: openRedsync, KeyPrefix: "redsync:"},
		{ID: "floor-majority-3", Label: "floor, release at a majority, 3 masters", Masters: 3, Open: openFloorMajority, KeyPrefix: "floor:"},
		{ID: "floor-majority-5", Label: "floor, release at a majority, 5 masters", Masters: 5, Open: openFloorMajority, KeyPrefix: "floor:"},
	}
}

// Ceiling is the handoff workload's upper bound: see openCeiling. It is not
// among Peers: two instances are two locks.
var Ceiling = Peer{ID: "ceiling-0", Label: "ceiling: a channel in one process, no Redis", Open: openCeiling, KeyPrefix: "ceiling:"}

// PeerByID returns the peer with that ID, or Ceiling.
func PeerByID(id string) (Peer, error) {
	for _, p := range append(Peers(), Ceiling) {
		if p.ID == id {
			return p, nil
		}
	}
	return Peer{}, fmt.Errorf("benchmarks: no peer %q", id)
}

// ---- distlock ----

type distlockLocker struct{ c *distlock.Client }

func openDistlock(addrs []string, ttl, _ time.Duration) (Locker, error) {
	// distlock renews every TTL/3; it has no separate renewal setting.
	c, err := distlock.New(distlock.Config{Nodes: addrs, TTL: ttl})
	if err != nil {
		return nil, err
	}
	return distlockLocker{c}, nil
}

func (d distlockLocker) Acquire(ctx context.Context, name string) (Lock, error) {
	l, err := d.c.Acquire(ctx, "bench"+name)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (d distlockLocker) Close() { d.c.Close() }

// ---- floor ----

// floorLocker is the least a Redlock client must send: SET NX PX to every
// master at once, held once a majority said OK; release runs the
// compare-and-delete script on every master, each once its SET was
// answered, and waits for all of them, or (majority) for a majority, the
// others completing in the background (Close waits for them). No fencing, no renewal, no validity arithmetic, no waiting for a
// held lock, no clean-up of a partial grant beyond the release. Like the
// root package's BenchmarkAcquireRelease floor, it uses a goroutine per
// master per call. With majority set, with masters at different distances
// it stops at the fastest majority both ways: the floor of workload (f).
//
// The one piece of bookkeeping it cannot do without: on each master the
// delete goes only once that master's SET has been answered.
// Without that, a SET still queued behind a majority that already answered
// can reach its master after the delete and leave the key there for a
// whole TTL (the first version of this floor did exactly that).
type floorLocker struct {
	clients []rueidis.Client
	seq     atomic.Uint64
	ttl     time.Duration
	bg      sync.WaitGroup // deletes still going on after Release returned
	// majority: Release returns once a majority confirmed its deletes
	// (workload (f)'s floor); otherwise once every master has, so that a
	// caller that takes the name again at once, with no retry, finds it
	// free everywhere.
	majority bool
}

var floorDelete = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

func openFloor(addrs []string, ttl, _ time.Duration) (Locker, error) {
	return newFloor(addrs, ttl, false)
}

func openFloorMajority(addrs []string, ttl, _ time.Duration) (Locker, error) {
	return newFloor(addrs, ttl, true)
}

func newFloor(addrs []string, ttl time.Duration, majority bool) (Locker, error) {
	f := &floorLocker{ttl: ttl, majority: majority}
	for _, a := range addrs {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{a}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			f.Close()
			return nil, err
		}
		f.clients = append(f.clients, c)
	}
	return f, nil
}

type floorLock struct {
	f          *floorLocker
	key, value string
	set        []chan struct{} // closed once master i answered the SET
}

func (f *floorLocker) Acquire(ctx context.Context, name string) (Lock, error) {
	return f.acquire(ctx, name, "floor", func(_ int, c rueidis.Client, l *floorLock) bool {
		return c.Do(ctx, c.B().Set().Key(l.key).Value(l.value).Nx().Px(f.ttl).Build()).Error() == nil
	})
}

// acquire sends set to every master at once and returns the lock once a
// majority granted; otherwise it releases what was granted. what names
// the floor in errors.
func (f *floorLocker) acquire(ctx context.Context, name, what string, set func(i int, c rueidis.Client, l *floorLock) bool) (Lock, error) {
	l := &floorLock{f: f, key: "floor:" + name, value: "v" + strconv.FormatUint(f.seq.Add(1), 36)}
	granted := make(chan bool, len(f.clients))
	for i, c := range f.clients {
		done := make(chan struct{})
		l.set = append(l.set, done)
		go func() {
			ok := set(i, c, l)
			close(done)
			granted <- ok
		}()
	}
	yes, need := 0, len(f.clients)/2+1
	for range f.clients {
		if <-granted {
			if yes++; yes == need {
				return l, nil
			}
		}
	}
	l.Release(context.WithoutCancel(ctx))
	return nil, fmt.Errorf("%s: %s granted by %d of %d masters", what, l.key, yes, len(f.clients))
}

func (l *floorLock) Release(ctx context.Context) error {
	errs := make(chan error, len(l.f.clients))
	dctx := context.WithoutCancel(ctx)
	for i, c := range l.f.clients {
		l.f.bg.Go(func() {
			<-l.set[i]
			errs <- floorDelete.Exec(dctx, c, []string{l.key}, []string{l.value}).Error()
		})
	}
	need := len(l.f.clients) // all of them, unless majority
	if l.f.majority {
		need = len(l.f.clients)/2 + 1
	}
	ok := 0
	var err error
	for range l.f.clients {
		if e := <-errs; e != nil {
			err = errors.Join(err, e)
		} else if ok++; ok == need {
			return nil
		}
	}
	return err
}

func (f *floorLocker) Close() {
	f.bg.Wait()
	for _, c := range f.clients {
		c.Close()
	}
}

// ---- ceiling ----

// The ceiling is a lock that is one buffered channel in this process: no
// network, no fencing, nothing between processes. It is no peer, only the
// best any lock can do in the handoff workload on this machine: there a
// lock's jobs/s is bounded by its holders' time.Sleep(1ms), which is longer
// than 1 ms, and longer still when the process does network I/O during it
// (the Go runtime's poller, woken by the replies, sleeps again with
// millisecond precision).
type ceilingLocker struct{ ch chan struct{} }

type ceilingLock struct{ ch chan struct{} }

func openCeiling(_ []string, _, _ time.Duration) (Locker, error) {
	return &ceilingLocker{ch: make(chan struct{}, 1)}, nil
}

func (c *ceilingLocker) Acquire(ctx context.Context, _ string) (Lock, error) {
	select {
	case c.ch <- struct{}{}:
		return ceilingLock{c.ch}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *ceilingLocker) Close() {}

func (l ceilingLock) Release(context.Context) error {
	<-l.ch
	return nil
}

// ---- redsync ----

type redsyncLocker struct {
	rs      *redsync.Redsync
	clients []*goredis.Client
	ttl     time.Duration
}

func openRedsync(addrs []string, ttl, _ time.Duration) (Locker, error) {
	r := &redsyncLocker{ttl: ttl}
	var pools []redsyncredis.Pool
	for _, a := range addrs {
		// go-redis defaults: a pool of 10 connections per GOMAXPROCS.
		c := goredis.NewClient(&goredis.Options{Addr: a})
		r.clients = append(r.clients, c)
		pools = append(pools, goredsync.NewPool(c))
	}
	r.rs = redsync.New(pools...)
	return r, nil
}

func (r *redsyncLocker) Acquire(ctx context.Context, name string) (Lock, error) {
	m := r.rs.NewMutex("redsync:"+name,
		redsync.WithExpiry(r.ttl),
		// Retry until ctx ends, every PollInterval (redsync's default is
		// 32 tries 50-250 ms apart, which fails waiters after ~5 s).
		redsync.WithTries(math.MaxInt32),
		redsync.WithRetryDelay(PollInterval))
	if err := m.LockContext(ctx); err != nil {
		return nil, err
	}
	return (*redsyncLock)(m), nil
}

type redsyncLock redsync.Mutex

func (m *redsyncLock) Release(ctx context.Context) error {
	_, err := (*redsync.Mutex)(m).UnlockContext(ctx)
	return err
}

func (r *redsyncLocker) Close() {
	for _, c := range r.clients {
		c.Close()
	}
}

// ---- bsm/redislock ----

type redislockLocker struct {
	c   *goredis.Client
	rl  *redislock.Client
	ttl time.Duration
}

func openRedislock(addrs []string, ttl, _ time.Duration) (Locker, error) {
	c := goredis.NewClient(&goredis.Options{Addr: addrs[0]})
	return &redislockLocker{c: c, rl: redislock.New(c), ttl: ttl}, nil
}

func (r *redislockLocker) Acquire(ctx context.Context, name string) (Lock, error) {
	// A fresh strategy per call: bsm's strategies carry state.
	l, err := r.rl.Obtain(ctx, "redislock:"+name, r.ttl, &redislock.Options{RetryStrategy: redislock.LinearBackoff(PollInterval)})
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (r *redislockLocker) Close() { r.c.Close() }

// ---- rueidislock ----

type rueidislockLocker struct{ l rueidislock.Locker }

func openRueidislock(addrs []string, ttl, renew time.Duration) (Locker, error) {
	return newRueidislock(addrs, ttl, renew, false)
}

// openRueidislockNoLoop sets NoLoopTracking (redis >= 7.0.5): the Locker's
// own writes then send it no invalidations. Without it every renewal
// invalidates the key on the Locker's own connection, which makes it renew
// again at once: a loop that costs CPU for every held lock (measured by the
// hold workload). With it, waiters of one Locker are not woken by that
// Locker's releases (in a trial the 8-worker handoff stalled into 10 s
// acquire timeouts), so the other workloads keep the default.
func openRueidislockNoLoop(addrs []string, ttl, renew time.Duration) (Locker, error) {
	return newRueidislock(addrs, ttl, renew, true)
}

func newRueidislock(addrs []string, ttl, renew time.Duration, noLoop bool) (Locker, error) {
	l, err := rueidislock.NewLocker(rueidislock.LockerOption{
		ClientOption:   rueidis.ClientOption{InitAddress: addrs[:1]},
		KeyMajority:    1, // one key on one node
		NoLoopTracking: noLoop,
		KeyValidity:    ttl,
		ExtendInterval: renew, // 0: its default, KeyValidity/2
	})
	if err != nil {
		return nil, err
	}
	return rueidislockLocker{l}, nil
}

// cancelLock releases a rueidislock lock: cancelling the context it
// returned deletes the key and waits for that.
type cancelLock context.CancelFunc

func (c cancelLock) Release(context.Context) error { c(); return nil }

func (r rueidislockLocker) Acquire(ctx context.Context, name string) (Lock, error) {
	_, cancel, err := r.l.WithContext(ctx, name)
	if err != nil {
		return nil, err
	}
	return cancelLock(cancel), nil
}

func (r rueidislockLocker) Close() { r.l.Close() }

// Family is the peer's ID without its master count: "distlock".
func (p Peer) Family() string {
	f, _, _ := strings.Cut(p.ID, "-")
	return f
}
