package benchmarks

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// masters is started once by TestMain for every test and benchmark here.
var masters *Masters

func TestMain(m *testing.M) {
	HandoffWorker() // a worker process of BenchmarkHandoff's procs=8 case, when run as one
	ms, stop, err := StartMasters(5)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	masters = ms
	code := m.Run()
	stop()
	os.Exit(code)
}

// TestPeers checks every peer once: it takes a lock, a second instance
// cannot take it meanwhile, and after release no key of it is left.
func TestPeers(t *testing.T) {
	for _, p := range Peers() {
		t.Run(p.ID, func(t *testing.T) {
			a, err := masters.open(p, TTL, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := masters.open(p, TTL, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			l, err := a.Acquire(t.Context(), "peers")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			if l2, err := b.Acquire(ctx, "peers"); err == nil {
				l2.Release(t.Context())
				t.Errorf("%s: a second instance took a held lock", p.ID)
			}
			cancel()
			if err := l.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			if left := masters.leftover(t.Name(), []Peer{p}); len(left) > 0 {
				t.Errorf("keys left: %v", left)
			}
		})
	}
}

// BenchmarkCycle is workloads (a), (b) and (e) for one peer at a time, for
// profiling:
//
//	go test -run '^$' -bench 'Cycle/distlock-3/goroutines=64' -cpuprofile cpu.out
func BenchmarkCycle(b *testing.B) {
	for _, p := range Peers() {
		for _, goroutines := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", p.ID, goroutines), func(b *testing.B) {
				lk, err := masters.open(p, TTL, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer lk.Close()
				CycleBenchmark(b, lk, goroutines)
			})
		}
	}
}

// BenchmarkHandoff is workload (c) for one case at a time, for profiling;
// it runs for b.N seconds × 1 s, so use -benchtime 3x for 3 s:
//
//	go test -run '^$' -bench 'Handoff/distlock-3/workers=8/clients=1' -benchtime 3x -cpuprofile cpu.out
func BenchmarkHandoff(b *testing.B) {
	cases := []struct {
		id               string
		workers, clients int
		procs            bool
	}{
		{"distlock-3", 8, 1, false}, {"distlock-3", 8, 8, false}, {"distlock-3", 8, 8, true}, {"distlock-3-noevents", 8, 8, true}, {"distlock-3", 64, 1, false},
		{"rueidislock-1", 8, 1, false}, {"rueidislock-1", 8, 8, true}, {"rueidislock-1", 64, 1, false},
		{"redsync-3", 8, 1, false}, {"redislock-1", 8, 1, false}, {"ceiling-0", 8, 1, false},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s/workers=%d/clients=%d", c.id, c.workers, c.clients)
		if c.procs {
			name = fmt.Sprintf("%s/workers=%d/procs=%d", c.id, c.workers, c.clients)
		}
		b.Run(name, func(b *testing.B) {
			p := peerByID(c.id)
			var lockers []Locker
			for range c.clients {
				if c.procs {
					break // each worker process opens its own
				}
				lk, err := masters.open(p, TTL, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer lk.Close()
				lockers = append(lockers, lk)
			}
			before := masters.calls(p.Masters)
			b.ResetTimer()
			var jobs []Job
			var elapsed time.Duration
			var failures int64
			if c.procs {
				var err error
				if jobs, elapsed, failures, err = HandoffProcs(masters, p, c.workers, time.Duration(b.N)*time.Second); err != nil {
					b.Fatal(err)
				}
			} else {
				jobs, elapsed, failures = Handoff(lockers, c.workers, time.Duration(b.N)*time.Second)
			}
			b.StopTimer()
			after := masters.calls(p.Masters)
			var waits []time.Duration
			for _, j := range jobs {
				waits = append(waits, j.Wait)
			}
			slices.Sort(waits)
			gaps := Gaps(jobs)
			b.ReportMetric(float64(len(jobs))/elapsed.Seconds(), "jobs/s")
			b.ReportMetric(float64(quantile(waits, 0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(quantile(waits, 0.99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(quantile(waits, 1).Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(quantile(gaps, 0.5).Microseconds())/1000, "gap-p50-ms")
			b.ReportMetric(float64(quantile(gaps, 0.99).Microseconds())/1000, "gap-p99-ms")
			b.ReportMetric(float64(failures), "failures")
			// Commands the masters ran per job, scripts' own calls
			// included: each of distlock's acquire, renew, release and
			// fence scripts runs one GET, so for distlock GETs beyond
			// scripts/job are its watch connections' reads (give or take
			// the waiting list's leave.lua, which runs no GET).
			if n := float64(len(jobs)); n > 0 {
				b.ReportMetric(float64(after["get"]-before["get"])/n, "get/job")
				b.ReportMetric(float64(after["pttl"]-before["pttl"])/n, "pttl/job")
				b.ReportMetric(float64(after["eval"]+after["evalsha"]-before["eval"]-before["evalsha"])/n, "scripts/job")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// calls returns how many times the first n masters have run each command
// (INFO commandstats, summed; commands a script runs count too).
func (m *Masters) calls(n int) map[string]int64 {
	total := make(map[string]int64)
	for _, c := range m.admin[:n] {
		info, err := c.Do(context.Background(), c.B().Info().Section("commandstats").Build()).ToString()
		if err != nil {
			continue
		}
		for line := range strings.Lines(info) {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
			if !ok {
				continue
			}
			name, stats, _ := strings.Cut(rest, ":")
			calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
			v, _ := strconv.ParseInt(calls, 10, 64)
			total[name] += v
		}
	}
	return total
}

// BenchmarkHold is workload (d) for one peer and lease count, and
// distlock's case under load (HoldBurners CPU burners beside the masters),
// for profiling; use -benchtime 1x:
//
//	go test -run '^$' -bench 'Hold/distlock-3/leases=100000$' -benchtime 1x -cpuprofile cpu.out
//	go test -run '^$' -bench 'Hold/distlock-3/leases=100000/burners=2$' -benchtime 1x
func BenchmarkHold(b *testing.B) {
	type holdBench struct {
		id         string
		n, burners int
	}
	var cases []holdBench
	for _, id := range []string{"distlock-3", "distlock-3-noevents", "rueidislock-1-noloop"} {
		for _, n := range []int{10_000, 100_000} {
			cases = append(cases, holdBench{id, n, 0})
		}
	}
	cases = append(cases, holdBench{"distlock-3", 100_000, HoldBurners})
	for _, c := range cases {
		name := fmt.Sprintf("%s/leases=%d", c.id, c.n)
		if c.burners > 0 {
			name += fmt.Sprintf("/burners=%d", c.burners)
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				row, err := HoldUnderLoad(masters, peerByID(c.id), c.n, c.burners)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(row.AcquireTime.Seconds(), "take-s")
				b.ReportMetric(float64(row.Lost), "lost")
				b.ReportMetric(float64(row.LostTaking), "lost-taking")
				b.ReportMetric(float64(row.Leases-row.Taken), "not-taken")
				b.ReportMetric(row.MinPTTL.Seconds(), "min-pttl-s")
				b.ReportMetric(float64(row.Absent), "sampled-never-on-master0")
				b.ReportMetric(row.CPU.Seconds(), "cpu-s")
				b.ReportMetric(row.MastersCPU.Seconds(), "masters-cpu-s")
				b.ReportMetric(row.BurnersCPU.Seconds(), "burners-cpu-s")
				b.ReportMetric(float64(row.MastersCPUPerRenewal().Nanoseconds())/1000, "masters-cpu-µs/renewal")
				b.ReportMetric(float64(row.SlowestPing.Microseconds())/1000, "slowest-ping-ms")
				b.ReportMetric(0, "ns/op")
				for why, n := range row.LostWhy {
					b.Logf("%d lost: %s", n, why)
				}
			}
		})
	}
}

// BenchmarkSleepDuringIO measures what the handoff workload's hold,
// time.Sleep(1ms), lasts here: alone, and while one PING to each of 3
// masters is answered during it (as a lock that draws a token, renews or
// reads during the hold would do). make bench records both in the
// results' machine table. Reports the median sleep in ms.
//
//	go test -run '^$' -bench SleepDuringIO -benchtime 2000x
func BenchmarkSleepDuringIO(b *testing.B) {
	for _, pings := range []int{0, 3} {
		b.Run(fmt.Sprintf("pings=%d", pings), func(b *testing.B) {
			p50 := SleepP50(time.Millisecond, b.N, masters.admin[:pings])
			b.ReportMetric(float64(p50.Microseconds())/1000, "sleep-p50-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestDistance runs workload (f) briefly: each peer completes cycles
// through the delaying proxies, no key is left, and distlock's and the
// floor's acquire are not faster than the physical limit (the proxies do
// delay).
func TestDistance(t *testing.T) {
	dc := DistanceCases[0]
	peers := distancePeers(len(dc.Delays))
	rows, err := Distance(masters, dc, peers, 1, 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		t.Logf("%s, %s: %d cycles, acquire p50 %v, release p50 %v (limit %v)", dc.Name(), r.Peer.ID, r.Cycles, r.AcquireP50, r.ReleaseP50, dc.Limit())
		if r.Cycles == 0 {
			t.Errorf("%s: no cycle in %s", r.Peer.ID, dc.Name())
		}
		if r.AcquireP50 < dc.Limit()*9/10 {
			t.Errorf("%s: acquire p50 %v, below the limit %v: the proxies do not delay", r.Peer.ID, r.AcquireP50, dc.Limit())
		}
	}
	if left := masters.leftover(t.Name(), peers); len(left) > 0 {
		t.Errorf("keys left: %v", left)
	}
}

// TestHandoffProcs: workload (c) with a worker process per Client takes
// turns on the lock (no failures, the holds do not
// overlap) and leaves no key behind.
func TestHandoffProcs(t *testing.T) {
	p := peerByID("distlock-3")
	jobs, elapsed, failures, err := HandoffProcs(masters, p, 3, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if failures != 0 || len(jobs) < 3 || elapsed < 300*time.Millisecond {
		t.Fatalf("%d jobs, %d failures in %v; want jobs, none failed, at least 300ms", len(jobs), failures, elapsed)
	}
	js := slices.Clone(jobs)
	slices.SortFunc(js, func(a, b Job) int { return a.Acquired.Compare(b.Acquired) })
	for i := 1; i < len(js); i++ {
		if js[i].Acquired.Before(js[i-1].ReleaseCalled) {
			t.Errorf("job %d acquired at %v, before job %d called Release at %v", i, js[i].Acquired, i-1, js[i-1].ReleaseCalled)
		}
	}
	if left := masters.leftover("handoff procs", []Peer{p}); len(left) > 0 {
		t.Errorf("keys left: %v", left)
	}
}
