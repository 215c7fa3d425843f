package benchmarks

import (
	"context"
	"time"

	"github.com/bsm/redislock"
	goredis "github.com/redis/go-redis/v9"
)

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
