package benchmarks

import (
	"context"
	"time"

	"github.com/distlock/distlock"
)

type distlockLocker struct{ c *distlock.Client }

func openDistlock(addrs []string, ttl, _ time.Duration) (Locker, error) {
	// distlock renews every TTL/3; it has no separate renewal setting.
	return openDistlockConfig(distlock.Config{Nodes: addrs, TTL: ttl})
}

// openDistlockNoEvents is distlock with Config.DisableLossEvents: its
// leases hear of lost keys from renewals only, and its masters send it no
// key-change messages (each of its own writes sends one otherwise).
func openDistlockNoEvents(addrs []string, ttl, _ time.Duration) (Locker, error) {
	return openDistlockConfig(distlock.Config{Nodes: addrs, TTL: ttl, DisableLossEvents: true})
}

func openDistlockConfig(cfg distlock.Config) (Locker, error) {
	c, err := distlock.New(cfg)
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
