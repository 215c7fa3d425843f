package benchmarks

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// luaFloor is the floor sending distlock's acquire.lua (as TryAcquire
// does: no waiting) instead of SET NX PX: the same round trips,
// the script's cost on the masters, none of distlock's client code.
type luaFloor struct {
	*floorLocker
	s *rueidis.Lua
}

func (f luaFloor) Acquire(ctx context.Context, name string) (Lock, error) {
	return f.acquire(ctx, name, "floor-acquire.lua", func(i int, c rueidis.Client, l *floorLock) bool {
		// As TryAcquire sends it: no waiter id, nobody's keys count as
		// free; the tombstone and the finished waiters' set never exist.
		keys := []string{l.key, "floorlua:fence:{x}", "floorlua:wait:{x}", "floorlua:lapse:{x}", "floorlua:dead:{x}", "floorlua:left:{x}"}
		res, err := f.s.Exec(ctx, c, keys, []string{l.value, "10000", "", "0", "1000", "", "", "0"}).ToArray()
		if err != nil || len(res) == 0 {
			return false
		}
		n, _ := res[0].AsInt64()
		return n == 1
	})
}

// breakdownVariant is one way of acquiring in BenchmarkAcquireBreakdown.
type breakdownVariant struct {
	name string
	open func() (Locker, error)
}

// breakdownVariants returns BenchmarkAcquireBreakdown's variants: the
// floor; the floor over distlock's connection settings (AlwaysPipelining,
// one connection per master); the floor sending distlock's own acquire.lua
// instead of SET NX PX (the script's cost on the masters); and distlock.
func breakdownVariants(tb testing.TB) []breakdownVariant {
	script, err := os.ReadFile("../internal/script/acquire.lua")
	if err != nil {
		tb.Fatal(err)
	}
	return []breakdownVariant{
		{"floor", func() (Locker, error) { return openFloor(masters.Addrs[:3], TTL, 0) }},
		{"floor-alwayspipelining", func() (Locker, error) {
			f := &floorLocker{ttl: TTL}
			for _, a := range masters.Addrs[:3] {
				c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{a}, ForceSingleClient: true, DisableCache: true,
					AlwaysPipelining: true, PipelineMultiplex: -1})
				if err != nil {
					f.Close()
					return nil, err
				}
				f.clients = append(f.clients, c)
			}
			return f, nil
		}},
		{"floor-acquire.lua", func() (Locker, error) {
			f, err := openFloor(masters.Addrs[:3], TTL, 0)
			if err != nil {
				return nil, err
			}
			return luaFloor{f.(*floorLocker), rueidis.NewLuaScript(string(script))}, nil
		}},
		{"distlock", func() (Locker, error) { return masters.open(peerByID("distlock-3"), TTL, 0) }},
	}
}

// BenchmarkAcquireBreakdown takes the uncontended acquire apart, one
// goroutine, with breakdownVariants. Run it a few times, the variants back
// to back:
//
//	go test -run '^$' -bench AcquireBreakdown -count 3
func BenchmarkAcquireBreakdown(b *testing.B) {
	for _, v := range breakdownVariants(b) {
		b.Run(v.name, func(b *testing.B) {
			lk, err := v.open()
			if err != nil {
				b.Fatal(err)
			}
			defer lk.Close()
			ctx := context.Background()
			acq := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				l, err := lk.Acquire(ctx, "breakdown")
				if err != nil {
					b.Fatal(err)
				}
				acq = append(acq, time.Since(t0))
				if err := l.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(acq)
			b.ReportMetric(float64(quantile(acq, 0.5).Nanoseconds())/1000, "acquire-p50-µs")
			b.ReportMetric(float64(quantile(acq, 0.9).Nanoseconds())/1000, "acquire-p90-µs")
		})
	}
}

// TestAcquireBreakdownVariants takes and releases the lock once with each
// of BenchmarkAcquireBreakdown's variants: the floor-acquire.lua variant
// sends acquire.lua's keys and arguments by hand, and once they changed it
// failed every run without a test noticing.
func TestAcquireBreakdownVariants(t *testing.T) {
	ctx := context.Background()
	for _, v := range breakdownVariants(t) {
		lk, err := v.open()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		l, err := lk.Acquire(ctx, "breakdown-test")
		if err != nil {
			t.Errorf("%s: Acquire: %v", v.name, err)
		} else if err := l.Release(ctx); err != nil {
			t.Errorf("%s: Release: %v", v.name, err)
		}
		lk.Close()
	}
}
