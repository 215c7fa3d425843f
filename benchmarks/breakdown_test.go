package benchmarks

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// luaFloor is the floor sending distlock's acquire.lua (as master 0 on the
// first master, no waiting) instead of SET NX PX: the same round trips,
// the script's cost on the masters, none of distlock's client code.
type luaFloor struct {
	*floorLocker
	s *rueidis.Lua
}

func (f luaFloor) Acquire(ctx context.Context, name string) (Lock, error) {
	return f.acquire(ctx, name, "floor-acquire.lua", func(i int, c rueidis.Client, l *floorLock) bool {
		q := "0"
		if i == 0 {
			q = "1"
		}
		res, err := f.s.Exec(ctx, c, []string{l.key, "floorlua:fence:{x}", "floorlua:wait:{x}", "floorlua:lapse:{x}"}, []string{l.value, "10000", q, "0", "1000"}).ToArray()
		if err != nil || len(res) == 0 {
			return false
		}
		n, _ := res[0].AsInt64()
		return n == 1
	})
}

// BenchmarkAcquireBreakdown takes the uncontended acquire apart, one
// goroutine: the floor; the floor over distlock's connection settings
// (AlwaysPipelining, one connection per master); the floor sending
// distlock's own acquire.lua instead of SET NX PX (the script's cost on the
// masters); and distlock. Run it a few times, the variants back to back:
//
//	go test -run '^$' -bench AcquireBreakdown -count 3
func BenchmarkAcquireBreakdown(b *testing.B) {
	script, err := os.ReadFile("../internal/script/acquire.lua")
	if err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		open func() (Locker, error)
	}{
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
	for _, v := range variants {
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
