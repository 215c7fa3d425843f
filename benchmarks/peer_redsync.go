package benchmarks

import (
	"context"
	"math"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	goredsync "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"
)

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
