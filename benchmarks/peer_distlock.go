package benchmarks

import (
	"context"
	"time"

	"github.com/distlock/distlock"
)

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
