package benchmarks

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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
