package distlock_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
	"github.com/distlock/distlock/internal/script"
)

// BenchmarkAcquireRelease measures acquire+release cycles on 3 masters,
// each goroutine on its own lock name, beside a floor that sends the same
// round trips with raw rueidis and no library logic: SET NX PX to every
// master at once, then the delete script to every master at once.
//
//	go test -run '^$' -bench AcquireRelease -benchmem .
//
// Compare the cycles/s of distlock and floor at the same goroutine count;
// the goal is distlock >= 0.9x floor at 64 goroutines, fencing included.
func BenchmarkAcquireRelease(b *testing.B) {
	servers := redistest.StartN(b, 3, redistest.Options{})
	for _, goroutines := range []int{1, 64} {
		// distlock-noevents: the same, with no key tracking: what hearing
		// of a loss at once (lease_events.go) costs the cycle.
		for _, noEvents := range []bool{false, true} {
			name := "distlock"
			if noEvents {
				name = "distlock-noevents"
			}
			b.Run(fmt.Sprintf("%s/goroutines=%d", name, goroutines), func(b *testing.B) {
				acquireCycles(b, servers, goroutines, distlock.Config{Nodes: redistest.URLs(servers), DisableLossEvents: noEvents})
			})
		}
		// distlock-ownprefix: loss events with a KeyPrefix of its own, under
		// which only lock keys live: the default prefix, distlock:, holds
		// the fence counters and waiting lists too, and every change to
		// them is sent to the Client as well.
		b.Run(fmt.Sprintf("distlock-ownprefix/goroutines=%d", goroutines), func(b *testing.B) {
			acquireCycles(b, servers, goroutines, distlock.Config{Nodes: redistest.URLs(servers), KeyPrefix: "distlock:locks:"})
		})
		b.Run(fmt.Sprintf("floor/goroutines=%d", goroutines), func(b *testing.B) {
			f := newFloor(b, servers)
			run(b, servers, goroutines, f.cycle)
		})
		// floor-fenced: the floor with the counter drawn in the acquire's
		// script: what fencing through a Redis script costs at least.
		b.Run(fmt.Sprintf("floor-fenced/goroutines=%d", goroutines), func(b *testing.B) {
			f := newFencedFloor(b, servers)
			run(b, servers, goroutines, f.cycle)
		})
	}
}

// BenchmarkTelemetry measures what OpenTelemetry costs an acquire+release
// cycle (1 goroutine, 3 masters): off (nil providers, the default), no-op
// providers, and the SDK recording every span and metric.
//
//	go test -run '^$' -bench Telemetry -benchmem .
func BenchmarkTelemetry(b *testing.B) {
	servers := redistest.StartN(b, 3, redistest.Options{})
	recording := func() (trace.TracerProvider, metric.MeterProvider) {
		return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder())),
			sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	}
	for _, tc := range []struct {
		name      string
		providers func() (trace.TracerProvider, metric.MeterProvider)
	}{
		{"off", func() (trace.TracerProvider, metric.MeterProvider) { return nil, nil }},
		{"noop", func() (trace.TracerProvider, metric.MeterProvider) {
			return tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()
		}},
		{"sdk", recording},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tp, mp := tc.providers()
			acquireCycles(b, servers, 1, distlock.Config{Nodes: redistest.URLs(servers), TracerProvider: tp, MeterProvider: mp})
		})
	}
}

// run calls cycle b.N times spread over goroutines, each with its own lock
// name, and reports cycles per second, this process's CPU time per cycle
// and, with servers, the masters' (INFO cpu): on 2 cores they share, the
// sum of the two bounds the cycles per second.
func run(b *testing.B, servers []*redistest.Server, goroutines int, cycle func(name string) error) {
	b.Helper()
	b.ReportAllocs()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	cpu := cpuTime()
	masters := mastersCPU(b, servers)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "bench-" + strconv.Itoa(g)
			for next.Add(1) <= int64(b.N) {
				if err := cycle(name); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cycles/s")
	// CPU time of this process alone (not the masters'): steadier than
	// wall time on a shared machine, for comparing client overhead.
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	if servers != nil {
		b.ReportMetric((mastersCPU(b, servers)-masters)*1e6/float64(b.N), "masters-cpu-µs/op")
	}
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
}

// floor is the least a Redlock client must send: no fencing, no renewal,
// no validity arithmetic, no clean-up of partial grants. With fenced
// (newFencedFloor), each acquire also draws the lock's counter in the same
// script as its SET, as a fenced client must: the least a fenced Redlock
// client sends.
type floor struct {
	clients []rueidis.Client
	del     *rueidis.Lua
	fenced  *rueidis.Lua // nil: SET NX PX
}

func newFencedFloor(b *testing.B, servers []*redistest.Server) *floor {
	f := newFloor(b, servers)
	f.fenced = rueidis.NewLuaScript(`if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('INCR', KEYS[2]) end return 0`)
	return f
}

func newFloor(b *testing.B, servers []*redistest.Server) *floor {
	f := &floor{del: rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)}
	for _, s := range servers {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			b.Fatal(err)
		}
		f.clients = append(f.clients, c)
	}
	b.Cleanup(func() {
		for _, c := range f.clients {
			c.Close()
		}
	})
	return f
}

func (f *floor) cycle(name string) error {
	ctx := context.Background()
	key, value := "floor:"+name, strconv.FormatInt(time.Now().UnixNano(), 36)
	var wg sync.WaitGroup
	var granted atomic.Int32
	for _, c := range f.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.fenced != nil {
				if n, err := f.fenced.Exec(ctx, c, []string{key, "floor:fence:" + name}, []string{value, "10000"}).AsInt64(); err == nil && n > 0 {
					granted.Add(1)
				}
				return
			}
			if c.Do(ctx, c.B().Set().Key(key).Value(value).Nx().PxMilliseconds(10000).Build()).Error() == nil {
				granted.Add(1)
			}
		}()
	}
	wg.Wait()
	if int(granted.Load()) < len(f.clients)/2+1 {
		return fmt.Errorf("floor: %s granted by %d masters", key, granted.Load())
	}
	for _, c := range f.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.del.Exec(ctx, c, []string{key}, []string{value})
		}()
	}
	wg.Wait()
	return nil
}

// BenchmarkHoldLeases holds many leases at once on one Client over 3
// masters for at least three renewal periods and reports whether the
// background renewal kept up:
//
//	go test -run '^$' -bench HoldLeases -benchtime 1x -timeout 20m .
//
// Metrics: leases-lost (must be 0); min-validity-s, the least remaining
// validity seen on any lease while held (a lease renewed on time never
// drops much below 2/3 of its TTL); cpu-s, the client process's CPU time
// during the hold; heap-MB, the Go heap in use while holding.
func BenchmarkHoldLeases(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("leases=%d", n), func(b *testing.B) {
			for range b.N {
				holdLeases(b, n)
			}
		})
	}
}

func holdLeases(b *testing.B, n int) {
	const ttl = 3 * time.Second
	servers := redistest.StartN(b, 3, redistest.Options{})
	c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers), TTL: ttl})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	leases := make([]*distlock.Lease, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				l, err := c.TryAcquire(ctx, "hold-"+strconv.FormatInt(i, 10))
				if err != nil {
					failed.Store(err)
					return
				}
				leases[i] = l
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}

	// Hold for three renewal periods (TTL/3 each) past the moment the last
	// lease was taken, sampling every lease's remaining validity.
	cpu0 := cpuTime()
	start := time.Now()
	minValidity := ttl
	for time.Since(start) < 3*ttl/3+ttl/2 {
		time.Sleep(100 * time.Millisecond)
		now := time.Now()
		for _, l := range leases {
			if l.Err() == nil {
				minValidity = min(minValidity, l.Deadline().Sub(now))
			}
		}
	}
	cpu := cpuTime() - cpu0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	lost := 0
	for _, l := range leases {
		if l.Err() != nil {
			lost++
		}
	}
	b.ReportMetric(float64(lost), "leases-lost")
	b.ReportMetric(minValidity.Seconds(), "min-validity-s")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
	if lost > 0 {
		b.Errorf("%d of %d leases lost while held", lost, n)
	}
}

// cpuTime returns the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandoff: 8 workers on one lock, each holds it 1 ms, then thinks
// 1 ms, over 3 masters; with one shared Client (goroutines of one process)
// and with a Client each (as 8 processes would be). Reports jobs/s and the
// wait for the lock (Acquire call to return): p50, p99, max.
//
//	go test -run '^$' -bench Handoff -benchtime 2000x .
func BenchmarkHandoff(b *testing.B) {
	servers := redistest.StartN(b, 3, redistest.Options{})
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("workers=8/clients=%d", clients), func(b *testing.B) {
			var cs []*distlock.Client
			for range clients {
				c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers)})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				cs = append(cs, c)
			}
			handoff(b, 8, func(w int) func(ctx context.Context) (func(), error) {
				c := cs[w%len(cs)]
				return func(ctx context.Context) (func(), error) {
					l, err := c.Acquire(ctx, "handoff")
					if err != nil {
						return nil, err
					}
					return func() { l.Release(context.Background()) }, nil
				}
			})
		})
	}
}

// BenchmarkHandoffPeer is BenchmarkHandoff's workload on rueidis's own
// lock, rueidislock (in the rueidis module already, so no new dependency),
// on one node, with one Locker shared by the 8 workers: the peer the
// handoff goal is stated against. Run both in one command:
//
//	go test -run '^$' -bench 'Handoff' -benchtime 2000x .
func BenchmarkHandoffPeer(b *testing.B) {
	servers := redistest.StartN(b, 1, redistest.Options{})
	b.Run("rueidislock/1node/workers=8", func(b *testing.B) {
		locker, err := rueidislock.NewLocker(rueidislock.LockerOption{
			ClientOption: rueidis.ClientOption{InitAddress: []string{servers[0].Addr()}},
			KeyMajority:  1,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer locker.Close()
		handoff(b, 8, func(int) func(ctx context.Context) (func(), error) {
			return func(context.Context) (func(), error) {
				// rueidislock ties the lock to the context it is given:
				// cancelling it releases the lock, so give it one that
				// lives until the release.
				_, cancel, err := locker.WithContext(context.Background(), "handoff")
				if err != nil {
					return nil, err
				}
				return cancel, nil
			}
		})
	})
}

// handoff runs b.N jobs over workers that each loop: acquire, hold 1 ms,
// release, think 1 ms. acquirer returns worker w's acquire function.
func handoff(b *testing.B, workers int, acquirer func(w int) func(ctx context.Context) (release func(), err error)) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var mu sync.Mutex
	var waits []time.Duration
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		acquire := acquirer(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				release, err := acquire(actx)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
				time.Sleep(time.Millisecond)
				release()
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			waits = append(waits, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(waits)
	pct := func(p float64) float64 { return percentileMs(waits, p) }
	b.ReportMetric(float64(len(waits))/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(failed.Load()), "failures")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSplitVote: waiters in separate Clients (as separate processes
// would be) all ask for one free lock at the same instant, over 3 masters,
// so that their votes split; it reports how long until the first of them
// holds it (p50, p99, max over b.N rounds) and how many rounds had no
// winner within 5 s.
//
//	go test -run '^$' -bench SplitVote -benchtime 100x .
func BenchmarkSplitVote(b *testing.B) {
	servers := redistest.StartN(b, 3, redistest.Options{})
	for _, waiters := range []int{8, 64} {
		b.Run(fmt.Sprintf("waiters=%d", waiters), func(b *testing.B) {
			cs := make([]*distlock.Client, waiters)
			for i := range cs {
				c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers)})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				cs[i] = c
			}
			var firsts []time.Duration
			stalls := 0
			b.ResetTimer()
			for range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				start := make(chan struct{})
				won := make(chan time.Duration, waiters)
				var wg sync.WaitGroup
				for _, c := range cs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						t0 := time.Now()
						l, err := c.Acquire(ctx, "split")
						if err != nil {
							return
						}
						won <- time.Since(t0)
						cancel() // the others stop waiting
						l.Release(context.Background())
					}()
				}
				close(start)
				wg.Wait()
				cancel()
				select {
				case d := <-won:
					firsts = append(firsts, d)
				default:
					stalls++
				}
			}
			b.StopTimer()
			slices.Sort(firsts)
			pct := func(p float64) float64 { return percentileMs(firsts, p) }
			b.ReportMetric(pct(0.5), "first-win-p50-ms")
			b.ReportMetric(pct(0.99), "first-win-p99-ms")
			b.ReportMetric(pct(1), "first-win-max-ms")
			b.ReportMetric(float64(stalls), "rounds-without-winner")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// percentileMs returns the p-th quantile of sorted durations, in ms.
func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Microseconds()) / 1000
}

// BenchmarkLossEvents measures how soon a lease hears that its keys are
// gone: n leases of one Client (3 masters, a 30 s TTL, so no renewal
// comes), their keys deleted on masters 0 and then 1; from the moment the
// DEL that takes a lease's key from master 1 (the last of the majority) is
// sent, to that lease's Done closing. Goal: p99 <= 50 ms for 1 and for
// 10,000 leases.
//
//	go test -run '^$' -bench LossEvents .
func BenchmarkLossEvents(b *testing.B) {
	for _, n := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("leases=%d", n), func(b *testing.B) {
			servers := redistest.StartN(b, 3, redistest.Options{})
			c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers), TTL: 30 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			raw := newFloor(b, servers).clients
			ctx := context.Background()
			var lat []time.Duration
			for iter := range b.N {
				b.StopTimer()
				leases := make([]*distlock.Lease, n)
				keys := make([]string, n)
				for i := range leases {
					name := fmt.Sprintf("loss-%d-%d", iter, i)
					if leases[i], err = c.TryAcquire(ctx, name); err != nil {
						b.Fatal(err)
					}
					keys[i] = "distlock:" + name
				}
				// An acquire returns at a majority: wait until masters 0
				// and 1 hold every key, or a delete could come before a
				// straggling acquire's SET, which would leave the lease
				// rightly held (on masters 0 and 2, say) and never lost.
				for m := range 2 {
					for lo := 0; lo < n; lo += 500 {
						hi := min(lo+500, n)
						for {
							got, err := raw[m].Do(ctx, raw[m].B().Exists().Key(keys[lo:hi]...).Build()).AsInt64()
							if err != nil {
								b.Fatal(err)
							}
							if got == int64(hi-lo) {
								break
							}
							time.Sleep(time.Millisecond)
						}
					}
				}
				closed := make([]time.Time, n)
				var wg sync.WaitGroup
				for i, l := range leases {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-l.Done()
						closed[i] = time.Now()
					}()
				}
				b.StartTimer()
				const chunk = 500
				sent := make([]time.Time, n)
				for m := range 2 {
					for lo := 0; lo < n; lo += chunk {
						hi := min(lo+chunk, n)
						at := time.Now()
						if err := raw[m].Do(ctx, raw[m].B().Del().Key(keys[lo:hi]...).Build()).Error(); err != nil {
							b.Fatal(err)
						}
						for i := lo; i < hi; i++ {
							sent[i] = at
						}
					}
				}
				wg.Wait()
				b.StopTimer()
				for i := range leases {
					lat = append(lat, closed[i].Sub(sent[i]))
				}
				// The reaper deletes what is left of the lost leases'
				// keys (master 2's) once the burst is over: let it finish,
				// so that its deletes neither fall in the next timed
				// window nor hold up the next TryAcquires past the
				// per-master timeout.
				for lo := 0; lo < n; lo += 500 {
					hi := min(lo+500, n)
					for deadline := time.Now().Add(10 * time.Second); ; {
						left, err := raw[2].Do(ctx, raw[2].B().Exists().Key(keys[lo:hi]...).Build()).AsInt64()
						if err != nil {
							b.Fatal(err)
						}
						if left == 0 {
							break
						}
						if time.Now().After(deadline) {
							b.Fatalf("%d lost leases' keys still on master 2 after 10s", left)
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
				b.StartTimer()
			}
			slices.Sort(lat)
			b.ReportMetric(percentileMs(lat, 0.50), "p50-ms")
			b.ReportMetric(percentileMs(lat, 0.99), "p99-ms")
			b.ReportMetric(percentileMs(lat, 1), "max-ms")
		})
	}
}

// BenchmarkFenceReplicas measures what Config.FenceReplicas costs an
// acquire+release cycle: 3 masters, each a Sentinel group (a primary, one
// replica, 3 Sentinels), without the option and with FenceReplicas 1
// (WAIT 1 after the acquire script, on a connection of its own), on 1 and
// 16 goroutines, each on its own lock name.
//
//	go test -run '^$' -bench FenceReplicas -benchtime 3s .
func BenchmarkFenceReplicas(b *testing.B) {
	groups := redistest.StartSentinelGroups(b, 3, redistest.SentinelOptions{})
	nodes := make([]rueidis.ClientOption, len(groups))
	for i, g := range groups {
		nodes[i] = rueidis.ClientOption{InitAddress: g.SentinelAddrs(), Sentinel: rueidis.SentinelOption{MasterSet: g.Name}}
	}
	for _, goroutines := range []int{1, 16} {
		for _, replicas := range []int{0, 1} {
			b.Run(fmt.Sprintf("FenceReplicas=%d/goroutines=%d", replicas, goroutines), func(b *testing.B) {
				acquireCycles(b, nil, goroutines, distlock.Config{NodeOptions: nodes, FenceReplicas: replicas})
			})
		}
	}
}

// acquireCycles runs acquire+release cycles on goroutines goroutines, each on
// its own lock name, with a Client of cfg.
func acquireCycles(b *testing.B, servers []*redistest.Server, goroutines int, cfg distlock.Config) {
	c, err := distlock.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	run(b, servers, goroutines, func(name string) error {
		l, err := c.Acquire(ctx, name)
		if err != nil {
			return err
		}
		return l.Release(ctx)
	})
}

// BenchmarkRenewChunk measures what one master spends renewing keys with
// renew.lua one key per call and renewChunk (100) per call, as the figure
// behind renewChunk (batch.go): the master's CPU time per key renewed
// (INFO cpu), 100,000 keys per iteration, all held.
//
//	go test -run '^$' -bench RenewChunk -benchtime 3x .
func BenchmarkRenewChunk(b *testing.B) {
	servers := redistest.StartN(b, 1, redistest.Options{})
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{servers[0].Addr()}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	ctx := context.Background()
	const n = 100_000
	keys, args := make([]string, n), make([][]string, n)
	set := make(rueidis.Commands, n)
	for i := range n {
		keys[i], args[i] = "distlock:chunk-"+strconv.Itoa(i), []string{"v" + strconv.Itoa(i), "60000"}
		set[i] = rc.B().Set().Key(keys[i]).Value(args[i][0]).Px(time.Minute).Build()
	}
	for _, r := range rc.DoMulti(ctx, set...) {
		if err := r.Error(); err != nil {
			b.Fatal(err)
		}
	}
	for _, chunk := range []int{1, 100} {
		b.Run(fmt.Sprintf("keys-per-call=%d", chunk), func(b *testing.B) {
			var calls []rueidis.LuaExec
			for lo := 0; lo < n; lo += chunk {
				call := rueidis.LuaExec{Keys: keys[lo : lo+chunk]}
				for _, a := range args[lo : lo+chunk] {
					call.Args = append(call.Args, a...)
				}
				calls = append(calls, call)
			}
			cpu0 := masterCPU(b, servers[0])
			for range b.N {
				for _, r := range script.Renew.ExecMulti(ctx, rc, calls) {
					if err := r.Error(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric((masterCPU(b, servers[0])-cpu0)*1e6/float64(b.N*n), "master-cpu-µs/key")
		})
	}
}

// masterCPU returns s's CPU time so far in seconds, user and system (INFO cpu).
// mastersCPU is the CPU time, in seconds, the masters in servers used so
// far (INFO cpu), summed.
func mastersCPU(b *testing.B, servers []*redistest.Server) float64 {
	b.Helper()
	sum := 0.0
	for _, s := range servers {
		sum += masterCPU(b, s)
	}
	return sum
}

func masterCPU(b *testing.B, s *redistest.Server) float64 {
	b.Helper()
	cpu, err := s.CPU()
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}
