package benchmarks

import (
	"context"
	"time"
)

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
