package benchmarks

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
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
	AcquireTime  time.Duration // taking all leases, holdTakers goroutines
	HoldTime     time.Duration
	Lost         int           // leases that ended before the hold was over
	LostTaking   int           // of those, leases that had ended before the last was taken
	MinPTTL      time.Duration // least PTTL seen on master 0 over a sample of leases
	Sampled      int           // leases in that sample
	Absent       int           // of those, leases whose key master 0 never had while holding
	CPU          time.Duration // this process's CPU time while holding
	MastersCPU   time.Duration // all masters' CPU time while holding
	HeapMB       float64       // Go heap in use while holding
	Goroutines   int           // while holding
	ReleaseTime  time.Duration
	Taken        int // leases held: those taken within holdTakeBudget
	HoldFailures int // leases that could not be taken in holdAttempts attempts
	Retries      int // attempts that failed while taking them and were retried

	// Under load (HoldUnderLoad): CPU-burning processes beside the
	// masters while taking and holding, and their CPU time while holding.
	Burners    int
	BurnersCPU time.Duration

	// SlowestPing is the slowest answer to a PING sent to each of the
	// peer's masters every 100 ms while taking and holding: whether the
	// masters answered within a third of the TTL (issue 16, goal 5).
	SlowestPing time.Duration

	// LostWhy counts the lost leases by what their Err said, the lock's
	// name left out (distlock only: rueidislock's contexts say nothing).
	LostWhy map[string]int
}

// MastersCPUPerRenewal is the masters' CPU time while holding over the
// renewals they ran meanwhile: each lease held is renewed on each of the
// peer's masters every Renew. 0 when nothing was held.
func (h HoldRow) MastersCPUPerRenewal() time.Duration {
	renewals := float64(h.Taken) * h.HoldTime.Seconds() / h.Renew.Seconds() * float64(h.Peer.Masters)
	if renewals == 0 {
		return 0
	}
	return time.Duration(float64(h.MastersCPU) / renewals)
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
	return hold(m, p, n, nil)
}

// HoldUnderLoad is Hold with burners CPU-burning processes (see Burners)
// running beside the masters from before the first lease is taken until
// the last is released: the machine's cores are busy with other work
// while the peer renews. The burners are stopped before it returns,
// whatever happens.
func HoldUnderLoad(m *Masters, p Peer, n, burners int) (HoldRow, error) {
	b, err := StartBurners(burners)
	if err != nil {
		return HoldRow{Peer: p, Leases: n, TTL: HoldTTL, Renew: HoldRenew, Burners: burners}, err
	}
	defer b.Stop()
	return hold(m, p, n, b)
}

// hold is Hold, with load running beside the masters (nil: none).
func hold(m *Masters, p Peer, n int, load *Burners) (HoldRow, error) {
	row := HoldRow{Peer: p, Leases: n, TTL: HoldTTL, Renew: HoldRenew, Burners: load.Len()}
	inst, err := m.open(p, HoldTTL, HoldRenew)
	if err != nil {
		return row, err
	}
	defer inst.Close()
	leases := make([]Lock, n)
	lk, lost, err := holdLocker(inst, p, leases)
	if err != nil {
		return row, err
	}

	probe := probeMasters(m.admin[:p.Masters])
	defer probe()
	t0 := time.Now()
	// distlock's acquires may wait (while its renewals are late): one
	// still waiting when the budget ends is cut short. rueidislock's lock
	// ends with the context it was taken under, so it gets none.
	cut := p.Family() == "distlock"
	row.HoldFailures, row.Retries = takeLeases(lk, leases, t0.Add(holdTakeBudget), cut)
	row.AcquireTime = time.Since(t0)
	// Hold what was taken: a peer that cannot take them all is reported,
	// not dropped.
	taken := heldIndexes(leases)
	row.Taken = len(taken)
	if row.Taken == 0 {
		return row, fmt.Errorf("%s: no lease of %d could be taken", p.ID, n)
	}
	row.LostTaking = countLost(taken, lost)

	// A sample of the leases, spread over all names, whose PTTL master 0
	// reports every 100 ms.
	row.Sampled = min(row.Taken, 1000)
	keys := holdSampleKeys(p, taken, row.Sampled)
	cpu0, mcpu0, bcpu0 := cpuTime(), m.cpu(), load.cpu()
	row.HoldTime = 3*HoldRenew + HoldRenew/2
	row.MinPTTL, row.Absent, err = minPTTL(m.admin[0], keys, row.HoldTime)
	if err != nil {
		return row, err
	}
	row.SlowestPing = probe() // and its goroutines end before they are counted
	row.CPU = cpuTime() - cpu0
	row.MastersCPU = m.cpu() - mcpu0
	row.BurnersCPU = load.cpu() - bcpu0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	row.HeapMB = float64(ms.HeapInuse) / (1 << 20)
	row.Goroutines = runtime.NumGoroutine()
	row.Lost = countLost(taken, lost)
	row.LostWhy = lostWhy(leases, taken)

	t1 := time.Now()
	releaseLeases(leases, taken)
	row.ReleaseTime = time.Since(t1)
	return row, nil
}

// holdTakers is how many goroutines take the leases, and release them.
const holdTakers = 256

// holdLocker returns what Hold takes p's leases with on inst, and lost,
// which reports whether leases[i] has ended: each peer says so its own way.
func holdLocker(inst Locker, p Peer, leases []Lock) (lk Locker, lost func(i int) bool, err error) {
	switch p.Family() {
	case "distlock":
		return inst, func(i int) bool { return leases[i].(interface{ Err() error }).Err() != nil }, nil
	case "rueidislock":
		// rueidislock's only signal is the context it returns, which the
		// Locker interface drops: hold them here instead.
		ctxs := make([]context.Context, len(leases))
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
		return lk, func(i int) bool { return ctxs[i].Err() != nil }, nil
	default:
		return nil, nil, fmt.Errorf("benchmarks: %s does not renew by itself", p.ID)
	}
}

// takeLeases takes leases[i], named "hold-i", on holdTakers goroutines,
// until every one is taken or giveUp has passed (with cut, an acquire
// still waiting then is cut short). It returns how many leases could not
// be taken in holdAttempts attempts, and how many attempts failed and
// were retried.
func takeLeases(lk Locker, leases []Lock, giveUp time.Time, cut bool) (failed, retried int) {
	var next, nFailed, nRetried atomic.Int64
	var wg sync.WaitGroup
	for range holdTakers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(leases) && time.Now().Before(giveUp); i = int(next.Add(1) - 1) {
				l, retries := takeLease(lk, "hold-"+strconv.Itoa(i), giveUp, cut)
				nRetried.Add(int64(retries))
				if l == nil {
					nFailed.Add(1)
					continue
				}
				leases[i] = l
			}
		})
	}
	wg.Wait()
	return int(nFailed.Load()), int(nRetried.Load())
}

// takeLease takes name in at most holdAttempts attempts, with cut none
// past giveUp: a peer may give up on an attempt under this load
// (rueidislock's per-key TryNextAfter is 20 ms), or make it wait
// (distlock, while its renewals are late), so it retries as a user would.
// It returns the lease, nil if no attempt took it, and how many attempts
// failed and were retried.
func takeLease(lk Locker, name string, giveUp time.Time, cut bool) (Lock, int) {
	ctx := context.Background()
	if cut {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, giveUp)
		defer cancel() // a distlock lease outlives the context it was taken under
	}
	for attempt := 1; ; attempt++ {
		l, err := lk.Acquire(ctx, name)
		if err == nil {
			return l, attempt - 1
		}
		if attempt == holdAttempts || ctx.Err() != nil {
			return nil, attempt - 1
		}
	}
}

// heldIndexes returns the indexes of the leases taken.
func heldIndexes(leases []Lock) []int {
	var taken []int
	for i, l := range leases {
		if l != nil {
			taken = append(taken, i)
		}
	}
	return taken
}

// lostWhy counts the leases taken that have ended by their Err's text
// after the lock's name, for peers whose leases have an Err.
func lostWhy(leases []Lock, taken []int) map[string]int {
	why := make(map[string]int)
	for _, i := range taken {
		l, ok := leases[i].(interface{ Err() error })
		if !ok || l.Err() == nil {
			continue
		}
		s := l.Err().Error()
		if j := strings.Index(s, "\": "); j >= 0 {
			s = s[j+3:]
		}
		// Per-master details (in brackets) vary from lease to lease:
		// count by the reason alone.
		if j := strings.Index(s, " (master "); j >= 0 {
			s = s[:j]
		}
		why[s]++
	}
	return why
}

// countLost returns how many of the leases taken have ended.
func countLost(taken []int, lost func(i int) bool) (n int) {
	for _, i := range taken {
		if lost(i) {
			n++
		}
	}
	return n
}

// holdSampleKeys returns the keys, on a master, of n of the leases taken,
// spread over all their names.
func holdSampleKeys(p Peer, taken []int, n int) []string {
	keys := make([]string, n)
	for j := range keys {
		i := taken[j*len(taken)/n]
		switch p.Family() {
		case "distlock":
			keys[j] = "distlock:bench" + "hold-" + strconv.Itoa(i)
		case "rueidislock":
			keys[j] = "rueidislock:0:hold-" + strconv.Itoa(i)
		}
	}
	return keys
}

// minPTTL reads the PTTL of keys on admin every 100 ms for d and returns
// the least it saw, at most HoldTTL, and how many of the keys it never
// found: a lease holds on a majority, which need not include that master
// (its acquire there answered late). A key gone after it was seen, or
// without a TTL, counts as 0.
func minPTTL(admin rueidis.Client, keys []string, d time.Duration) (least time.Duration, absent int, err error) {
	least = HoldTTL
	seen := make([]bool, len(keys))
	cmds := make(rueidis.Commands, len(keys))
	for start := time.Now(); time.Since(start) < d; {
		time.Sleep(100 * time.Millisecond)
		for j, k := range keys {
			cmds[j] = admin.B().Pttl().Key(k).Build()
		}
		for j, r := range admin.DoMulti(context.Background(), cmds...) {
			ms, err := r.AsInt64()
			if err != nil {
				return least, 0, err
			}
			switch {
			case ms == -2 && !seen[j]:
				continue // not there yet, or never
			case ms < 0: // -2: gone since; -1: no TTL
				ms = 0
			}
			seen[j] = true
			least = min(least, time.Duration(ms)*time.Millisecond)
		}
	}
	for _, s := range seen {
		if !s {
			absent++
		}
	}
	return least, absent, nil
}

// probeMasters sends a PING to each of admins every 100 ms, until the
// function it returns is called; that function returns the slowest answer
// (a PING that failed counts from when it was sent until it failed), and
// may be called again.
func probeMasters(admins []rueidis.Client) (stop func() time.Duration) {
	done := make(chan struct{})
	var slowest atomic.Int64
	var wg sync.WaitGroup
	for _, c := range admins {
		wg.Go(func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				t0 := time.Now()
				c.Do(context.Background(), c.B().Ping().Build())
				d := int64(time.Since(t0))
				for {
					old := slowest.Load()
					if d <= old || slowest.CompareAndSwap(old, d) {
						break
					}
				}
			}
		})
	}
	var once sync.Once
	return func() time.Duration {
		once.Do(func() { close(done); wg.Wait() })
		return time.Duration(slowest.Load())
	}
}

// releaseLeases releases the leases taken, on holdTakers goroutines.
func releaseLeases(leases []Lock, taken []int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range holdTakers {
		wg.Go(func() {
			for j := int(next.Add(1) - 1); j < len(taken); j = int(next.Add(1) - 1) {
				leases[taken[j]].Release(context.Background())
			}
		})
	}
	wg.Wait()
}

type lockerFunc func(ctx context.Context, name string) (Lock, error)

func (f lockerFunc) Acquire(ctx context.Context, name string) (Lock, error) { return f(ctx, name) }
func (f lockerFunc) Close()                                                 {}
