package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

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
