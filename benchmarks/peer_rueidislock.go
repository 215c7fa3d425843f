package benchmarks

import (
	"context"
	"time"

	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"
)

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
