package benchmarks

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// A Masters is the run's set of redis-server masters; a peer on n masters
// uses the first n.
type Masters struct {
	Addrs []string
	admin []rueidis.Client // one per master, for key checks and PTTL samples
	pids  []int            // redis-server process ids, for their CPU time
}

// cpu returns the CPU time (user+system) all masters have used, read from
// /proc; zero where /proc is not there.
func (m *Masters) cpu() time.Duration {
	var total time.Duration
	for _, pid := range m.pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0
		}
		// Fields after the ")" that ends the command name: utime and
		// stime are the 12th and 13th, in clock ticks (100 per second on
		// Linux).
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return 0
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(u+st) * 10 * time.Millisecond
	}
	return total
}

// open makes one instance of p on its masters.
func (m *Masters) open(p Peer, ttl, renew time.Duration) (Locker, error) {
	if p.Masters > len(m.Addrs) {
		return nil, fmt.Errorf("benchmarks: %s needs %d masters, the run has %d", p.ID, p.Masters, len(m.Addrs))
	}
	return p.Open(m.Addrs[:p.Masters], ttl, renew)
}

// LatencyRow is workload (a): one goroutine, uncontended acquire+release.
type LatencyRow struct {
	Peer                   Peer
	Cycles                 int
	AcquireP50, AcquireP99 time.Duration
	CycleP50, CycleP99     time.Duration
}

// Latency runs rounds; in each round every peer in turn runs acquire+release
// cycles on one goroutine for per. Interleaving the peers spreads the
// machine's noise over all of them alike.
func Latency(ctx context.Context, lockers []Locker, peers []Peer, rounds int, per time.Duration) ([]LatencyRow, error) {
	acq := make([][]time.Duration, len(peers))
	cyc := make([][]time.Duration, len(peers))
	for range rounds {
		for i, lk := range lockers {
			for end := time.Now().Add(per); time.Now().Before(end); {
				t0 := time.Now()
				l, err := lk.Acquire(ctx, "latency")
				if err != nil {
					return nil, fmt.Errorf("%s: %w", peers[i].ID, err)
				}
				t1 := time.Now()
				if err := l.Release(ctx); err != nil {
					return nil, fmt.Errorf("%s: release: %w", peers[i].ID, err)
				}
				acq[i] = append(acq[i], t1.Sub(t0))
				cyc[i] = append(cyc[i], time.Since(t0))
			}
		}
	}
	rows := make([]LatencyRow, len(peers))
	for i, p := range peers {
		slices.Sort(acq[i])
		slices.Sort(cyc[i])
		rows[i] = LatencyRow{Peer: p, Cycles: len(acq[i]),
			AcquireP50: quantile(acq[i], 0.5), AcquireP99: quantile(acq[i], 0.99),
			CycleP50: quantile(cyc[i], 0.5), CycleP99: quantile(cyc[i], 0.99)}
	}
	return rows, nil
}

// ThroughputRow is workload (b): goroutines on distinct names.
type ThroughputRow struct {
	Peer       Peer
	Goroutines int
	Cycles     int64
	PerSecond  float64
	// ClientCPU and MastersCPU are the CPU time this process and all the
	// redis-server masters used, per cycle: on a machine whose cores the
	// masters share, the sum bounds the throughput.
	ClientCPU, MastersCPU time.Duration
}

// Throughput runs rounds; in each round every peer in turn runs
// acquire+release cycles on goroutines, each on its own name, for per.
func Throughput(ctx context.Context, m *Masters, lockers []Locker, peers []Peer, goroutines, rounds int, per time.Duration) ([]ThroughputRow, error) {
	cycles := make([]int64, len(peers))
	spent := make([]time.Duration, len(peers))
	client := make([]time.Duration, len(peers))
	masters := make([]time.Duration, len(peers))
	for range rounds {
		for i, lk := range lockers {
			c0, m0 := cpuTime(), m.cpu()
			n, d, err := cycleFor(ctx, lk, goroutines, per)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", peers[i].ID, err)
			}
			client[i] += cpuTime() - c0
			masters[i] += m.cpu() - m0
			cycles[i] += n
			spent[i] += d
		}
	}
	rows := make([]ThroughputRow, len(peers))
	for i, p := range peers {
		rows[i] = ThroughputRow{Peer: p, Goroutines: goroutines, Cycles: cycles[i], PerSecond: float64(cycles[i]) / spent[i].Seconds()}
		if cycles[i] > 0 {
			rows[i].ClientCPU = client[i] / time.Duration(cycles[i])
			rows[i].MastersCPU = masters[i] / time.Duration(cycles[i])
		}
	}
	return rows, nil
}

// cycleFor runs acquire+release on goroutines, goroutine g on name
// "tput-g", until per has passed; it returns the cycles done and the time
// from start until the last goroutine stopped.
func cycleFor(ctx context.Context, lk Locker, goroutines int, per time.Duration) (int64, time.Duration, error) {
	var done atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	end := start.Add(per)
	for g := range goroutines {
		wg.Go(func() {
			name := "tput-" + strconv.Itoa(g)
			for time.Now().Before(end) {
				l, err := lk.Acquire(ctx, name)
				if err == nil {
					err = l.Release(ctx)
				}
				if err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		return 0, 0, err
	}
	return done.Load(), elapsed, nil
}

// HandoffCase is one configuration of workload (c).
type HandoffCase struct {
	Peer    Peer
	Workers int
	Clients int // instances of the peer, workers spread over them
}

// HandoffRow is workload (c): workers on one lock, hold 1 ms, think 1 ms.
type HandoffRow struct {
	HandoffCase
	Jobs          int
	JobsPerSecond float64
	WaitP50       time.Duration
	WaitP99       time.Duration
	WaitMax       time.Duration
	ReleaseP50    time.Duration // the Release call alone
	GapP50        time.Duration // holder calls Release → next acquire returns
	GapP99        time.Duration
	Failures      int64 // acquires that did not succeed within 10 s
}

// HandoffHold and HandoffThink are the handoff workload's times (issue 4, item 6).
const (
	HandoffHold  = time.Millisecond
	HandoffThink = time.Millisecond
	// AcquireTimeout bounds one acquire in the handoff workload: past it
	// the attempt counts as a failure.
	AcquireTimeout = 10 * time.Second
)

// A Job is one turn of a handoff worker: when its acquire returned and
// when it called and returned from Release.
type Job struct {
	Wait                    time.Duration // acquire call to return
	Acquired, ReleaseCalled time.Time
	Release                 time.Duration // the Release call
}

// Gaps returns, for jobs of one lock, the time from each holder calling
// Release to the next holder's acquire returning: what a handoff costs
// beyond the hold, sorted.
func Gaps(jobs []Job) []time.Duration {
	js := slices.Clone(jobs)
	slices.SortFunc(js, func(a, b Job) int { return a.Acquired.Compare(b.Acquired) })
	var gaps []time.Duration
	for i := 1; i < len(js); i++ {
		gaps = append(gaps, js[i].Acquired.Sub(js[i-1].ReleaseCalled))
	}
	slices.Sort(gaps)
	return gaps
}

// Handoff runs workers on one lock named "handoff" for d: each loops
// acquire, hold, release, think. The wait is from the acquire call to its
// return.
func Handoff(lockers []Locker, workers int, d time.Duration) (jobs []Job, elapsed time.Duration, failures int64) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	end := start.Add(d)
	for w := range workers {
		lk := lockers[w%len(lockers)]
		wg.Go(func() {
			var mine []Job
			for time.Now().Before(end) {
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), AcquireTimeout)
				l, err := lk.Acquire(ctx, "handoff")
				if err != nil {
					cancel()
					failed.Add(1)
					continue
				}
				j := Job{Acquired: time.Now()}
				j.Wait = j.Acquired.Sub(t0)
				time.Sleep(HandoffHold)
				j.ReleaseCalled = time.Now()
				l.Release(context.Background())
				j.Release = time.Since(j.ReleaseCalled)
				mine = append(mine, j)
				cancel() // only now: rueidislock ties the lock to ctx
				time.Sleep(HandoffThink)
			}
			mu.Lock()
			jobs = append(jobs, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return jobs, time.Since(start), failed.Load()
}

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

// AllocRow is workload (e): allocations per acquire+release, one goroutine.
type AllocRow struct {
	Peer          Peer
	N             int
	NsPerOp       int64
	AllocsPerOp   int64
	BytesPerOp    int64
	BenchmarkLine string
}

// Allocs measures acquire+release of p with testing.Benchmark and
// ReportAllocs. The counts are of the whole process, so they include what
// the peer's client goroutines allocate on its behalf.
func Allocs(lk Locker, p Peer) (AllocRow, error) {
	var failed error
	r := testing.Benchmark(func(b *testing.B) {
		CycleBenchmark(b, lk, 1)
		if b.Failed() {
			failed = fmt.Errorf("%s: allocation benchmark failed", p.ID)
		}
	})
	if failed != nil {
		return AllocRow{}, failed
	}
	return AllocRow{Peer: p, N: r.N, NsPerOp: r.NsPerOp(), AllocsPerOp: r.AllocsPerOp(),
		BytesPerOp: r.AllocedBytesPerOp(), BenchmarkLine: r.String() + r.MemString()}, nil
}

// CycleBenchmark runs b.N acquire+release cycles of lk over goroutines,
// each on its own name, reporting allocations and cycles/s.
func CycleBenchmark(b *testing.B, lk Locker, goroutines int) {
	b.ReportAllocs()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			name := "alloc-" + strconv.Itoa(g)
			for next.Add(1) <= int64(b.N) {
				l, err := lk.Acquire(ctx, name)
				if err == nil {
					err = l.Release(ctx)
				}
				if err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cycles/s")
	if err, _ := failed.Load().(error); err != nil {
		b.Error(err)
	}
}

// quantile returns the q-th quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// cpuTime returns the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// SleepP50 is the median time time.Sleep(d) takes here, over n sleeps: the
// handoff's hold and think are sleeps, so 1/SleepP50(1ms) bounds the jobs/s
// of any lock. With pings, each sleep has one PING sent to each of those
// clients as it starts, answered during it (as a lock that draws tokens,
// renews or reads while its holder sleeps would have): the Go runtime's
// poller, woken by the replies, sleeps again with millisecond precision.
func SleepP50(d time.Duration, n int, pings []rueidis.Client) time.Duration {
	s := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range s {
		for _, c := range pings {
			wg.Go(func() { c.Do(context.Background(), c.B().Ping().Build()) })
		}
		t0 := time.Now()
		time.Sleep(d)
		s[i] = time.Since(t0)
		wg.Wait()
	}
	slices.Sort(s)
	return quantile(s, 0.5)
}
