package benchmarks

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// HoldRow is workload (d): many leases held on one instance while the
// peer renews them by itself.
type HoldRow struct {
	Peer         Peer
	Leases       int
	TTL, Renew   time.Duration
	AcquireTime  time.Duration // taking all leases, 256 goroutines
	HoldTime     time.Duration
	Lost         int           // leases that ended before the hold was over
	LostTaking   int           // of those, leases that had ended before the last was taken
	MinPTTL      time.Duration // least PTTL seen on master 0 over a sample of leases
	Sampled      int           // leases in that sample
	CPU          time.Duration // this process's CPU time while holding
	MastersCPU   time.Duration // all masters' CPU time while holding
	HeapMB       float64       // Go heap in use while holding
	Goroutines   int           // while holding
	ReleaseTime  time.Duration
	Taken        int // leases held: those taken within holdTakeBudget
	HoldFailures int // leases that could not be taken in holdAttempts attempts
	Retries      int // attempts that failed while taking them and were retried
}

// holdAttempts is how many times Hold tries to take one lease, and
// holdTakeBudget how long it spends taking them before it holds what it has.
const (
	holdAttempts   = 5
	holdTakeBudget = 30 * time.Second
)

// HoldTTL and HoldRenew are the hold workload's lease TTL and renewal
// interval (distlock renews every TTL/3; rueidislock is told the same).
const (
	HoldTTL   = 3 * time.Second
	HoldRenew = HoldTTL / 3
)

// Hold takes n leases named "hold-i" on one instance of p, holds them for
// three renewal periods and a half, and reports whether renewal kept up:
// leases lost (must be 0), the least PTTL seen on master 0 over a sample of
// 1,000 leases read every 100 ms (a lease renewed on time stays above
// TTL − Renew), and the client's CPU time and heap while holding.
func Hold(m *Masters, p Peer, n int) (HoldRow, error) {
	row := HoldRow{Peer: p, Leases: n, TTL: HoldTTL, Renew: HoldRenew}
	inst, err := m.open(p, HoldTTL, HoldRenew)
	if err != nil {
		return row, err
	}
	defer inst.Close()
	lk := inst
	leases := make([]Lock, n)
	// lost reports whether lease i has ended; each peer says so its own way.
	var lost func(i int) bool
	switch p.Family() {
	case "distlock":
		lost = func(i int) bool { return leases[i].(interface{ Err() error }).Err() != nil }
	case "rueidislock":
		// rueidislock's only signal is the context it returns, which the
		// Locker interface drops: hold them here instead.
		ctxs := make([]context.Context, n)
		lost = func(i int) bool { return ctxs[i].Err() != nil }
		rl := inst.(rueidislockLocker).l
		lk = lockerFunc(func(ctx context.Context, name string) (Lock, error) {
			i, _ := strconv.Atoi(name[len("hold-"):])
			c, cancel, err := rl.TryWithContext(ctx, name)
			if err != nil {
				return nil, err
			}
			ctxs[i] = c
			return cancelLock(cancel), nil
		})
	default:
		return row, fmt.Errorf("benchmarks: %s does not renew by itself", p.ID)
	}

	t0 := time.Now()
	giveUp := t0.Add(holdTakeBudget)
	var next atomic.Int64
	var failed, retried atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && time.Now().Before(giveUp); i = int(next.Add(1) - 1) {
				// A peer may give up on an attempt under this load
				// (rueidislock's per-key TryNextAfter is 20 ms): retry as
				// a user would, and count it.
				for attempt := 1; ; attempt++ {
					l, err := lk.Acquire(context.Background(), "hold-"+strconv.Itoa(i))
					if err == nil {
						leases[i] = l
						break
					}
					if attempt == holdAttempts {
						failed.Add(1)
						break
					}
					retried.Add(1)
				}
			}
		})
	}
	wg.Wait()
	row.AcquireTime = time.Since(t0)
	row.HoldFailures = int(failed.Load())
	row.Retries = int(retried.Load())
	// Hold what was taken: a peer that cannot take them all is reported,
	// not dropped.
	var taken []int // indexes of the leases held
	for i, l := range leases {
		if l != nil {
			taken = append(taken, i)
		}
	}
	row.Taken = len(taken)
	if row.Taken == 0 {
		return row, fmt.Errorf("%s: no lease of %d could be taken", p.ID, n)
	}

	countLost := func() (n int) {
		for _, i := range taken {
			if lost(i) {
				n++
			}
		}
		return n
	}
	row.LostTaking = countLost()

	// A sample of the leases, spread over all names, whose PTTL master 0
	// reports every 100 ms.
	row.Sampled = min(row.Taken, 1000)
	keys := make([]string, row.Sampled)
	for j := range keys {
		i := taken[j*row.Taken/row.Sampled]
		switch p.Family() {
		case "distlock":
			keys[j] = "distlock:bench" + "hold-" + strconv.Itoa(i)
		case "rueidislock":
			keys[j] = "rueidislock:0:hold-" + strconv.Itoa(i)
		}
	}
	admin := m.admin[0]
	cmds := make(rueidis.Commands, len(keys))
	row.MinPTTL = HoldTTL
	cpu0, mcpu0 := cpuTime(), m.cpu()
	start := time.Now()
	row.HoldTime = 3*HoldRenew + HoldRenew/2
	for time.Since(start) < row.HoldTime {
		time.Sleep(100 * time.Millisecond)
		for j, k := range keys {
			cmds[j] = admin.B().Pttl().Key(k).Build()
		}
		for _, r := range admin.DoMulti(context.Background(), cmds...) {
			ms, err := r.AsInt64()
			if err != nil {
				return row, err
			}
			if ms < 0 { // -2: gone; -1: no TTL
				ms = 0
			}
			row.MinPTTL = min(row.MinPTTL, time.Duration(ms)*time.Millisecond)
		}
	}
	row.CPU = cpuTime() - cpu0
	row.MastersCPU = m.cpu() - mcpu0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	row.HeapMB = float64(ms.HeapInuse) / (1 << 20)
	row.Goroutines = runtime.NumGoroutine()
	row.Lost = countLost()

	t1 := time.Now()
	next.Store(0)
	for range 256 {
		wg.Go(func() {
			for j := int(next.Add(1) - 1); j < len(taken); j = int(next.Add(1) - 1) {
				leases[taken[j]].Release(context.Background())
			}
		})
	}
	wg.Wait()
	row.ReleaseTime = time.Since(t1)
	return row, nil
}

type lockerFunc func(ctx context.Context, name string) (Lock, error)

func (f lockerFunc) Acquire(ctx context.Context, name string) (Lock, error) { return f(ctx, name) }
func (f lockerFunc) Close()                                                 {}
