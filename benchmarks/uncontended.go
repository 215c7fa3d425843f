package benchmarks

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

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
