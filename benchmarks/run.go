package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/redistest"
)

// Options configures Run.
type Options struct {
	// Scale multiplies every phase's duration; 1 is the full run (about
	// three minutes), 0.1 a smoke test. Hold workloads keep their lease
	// counts and times (renewal needs three periods) unless Scale < 1,
	// which holds 1,000 leases instead, and 100,000 × Scale in the case
	// under load.
	Scale float64
	// Log receives progress lines.
	Log io.Writer
}

// Results is everything one run measured.
type Results struct {
	Start, End time.Time
	Machine    Machine
	Latency    []LatencyRow
	Throughput []ThroughputRow
	Handoff    []HandoffRow
	Hold       []HoldRow
	Allocs     []AllocRow
	Distance   []DistanceRow
	Leftover   []string // keys left behind after a workload; must be empty
}

// Machine records where the figures were measured.
type Machine struct {
	NumCPU      int
	GOMAXPROCS  int
	CPUModel    string
	Redis       string
	Go          string
	OS          string
	LoadAverage string        // /proc/loadavg at the start: the machine is shared
	Sleep1ms    time.Duration // median of time.Sleep(time.Millisecond)
	// Sleep1msPings is Sleep1ms with one PING to each of 3 masters
	// answered during each sleep.
	Sleep1msPings time.Duration
}

// Run starts 5 redis-server masters, runs every workload on them and stops
// them. Peers on fewer masters use the first ones.
func Run(opts Options) (*Results, error) {
	began := time.Now()
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "%6.1fs  "+format+"\n", append([]any{time.Since(began).Seconds()}, args...)...)
		}
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * opts.Scale) }

	m, stop, err := StartMasters(5)
	if err != nil {
		return nil, err
	}
	defer stop()

	res := &Results{Start: time.Now().UTC(), Machine: machine()}
	res.Machine.Sleep1ms = SleepP50(time.Millisecond, 200, nil)
	res.Machine.Sleep1msPings = SleepP50(time.Millisecond, 200, m.admin[:3])
	ctx := context.Background()
	main := []string{"floor-3", "distlock-3", "redsync-3", "redislock-1", "rueidislock-1"}
	peers := peersByID(main...)

	// (a) and (b): one instance per peer, kept for both.
	lockers, err := openAll(m, peers)
	if err != nil {
		return nil, err
	}
	logf("latency: one goroutine, %d peers interleaved", len(peers))
	res.Latency, err = Latency(ctx, lockers, peers, 3, scale(time.Second))
	if err == nil {
		logf("throughput: 64 goroutines on distinct names")
		res.Throughput, err = Throughput(ctx, m, lockers, peers, 64, 3, scale(time.Second))
	}
	closeAll(lockers)
	if err != nil {
		return nil, err
	}
	res.Leftover = append(res.Leftover, m.leftover("latency, throughput", peers)...)

	// (f) masters at different distances, through delaying proxies.
	for _, dc := range DistanceCases {
		logf("distance: %s", dc.Name())
		dp := distancePeers(len(dc.Delays))
		rows, err := Distance(m, dc, dp, 3, scale(time.Second))
		if err != nil {
			return nil, err
		}
		res.Distance = append(res.Distance, rows...)
		res.Leftover = append(res.Leftover, m.leftover(dc.Name(), dp)...)
	}

	// (c) handoff: the cases interleaved over two rounds, on one lock each.
	one := func(id string, workers int) HandoffCase {
		return HandoffCase{Peer: peerByID(id), Workers: workers, Clients: 1}
	}
	cases := []HandoffCase{
		one("distlock-3", 8),
		{Peer: peerByID("distlock-3"), Workers: 8, Clients: 8},
		{Peer: peerByID("distlock-3"), Workers: 8, Clients: 8, Processes: true},
		one("rueidislock-1", 8),
		{Peer: peerByID("rueidislock-1"), Workers: 8, Clients: 8, Processes: true}, one("redsync-3", 8), one("redislock-1", 8),
		one("distlock-3", 64), one("rueidislock-1", 64),
		one("redsync-3", 64), one("redislock-1", 64),
		one("ceiling-0", 8),
	}
	res.Handoff, err = runHandoff(m, cases, 2, scale(1500*time.Millisecond), logf)
	if err != nil {
		return nil, err
	}
	res.Leftover = append(res.Leftover, m.leftover("handoff", peers)...)

	// (e) allocations, 3 and 5 masters.
	for _, p := range peersByID("floor-3", "distlock-3", "redsync-3", "floor-5", "distlock-5", "redsync-5", "redislock-1", "rueidislock-1") {
		logf("allocations: %s", p.ID)
		lk, err := m.open(p, TTL, 0)
		if err != nil {
			return nil, err
		}
		row, err := Allocs(lk, p)
		lk.Close()
		if err != nil {
			return nil, err
		}
		res.Allocs = append(res.Allocs, row)
	}
	res.Leftover = append(res.Leftover, m.leftover("allocations", Peers())...)

	// (d) held leases, last: it fills the masters with keys.
	holds, left, err := runHolds(m, opts.Scale, logf)
	res.Hold = holds
	res.Leftover = append(res.Leftover, left...)
	if err != nil {
		return nil, err
	}
	res.End = time.Now().UTC()
	return res, nil
}

// HoldBurners is how many CPU-burning processes run beside the masters in
// workload (d)'s case under load: one per core of the 2-core machine the
// results are measured on.
const HoldBurners = 2

// holdCase is one case of workload (d): peers ids each hold n leases, with
// burners CPU-burning processes beside the masters.
type holdCase struct {
	n       int
	ids     []string
	burners int
}

// runHolds runs workload (d) and returns its rows and the keys left
// behind after each case. At scale below 1 the cases without load hold
// 1,000 leases, and the case under load 100,000 × scale.
func runHolds(m *Masters, scale float64, logf func(string, ...any)) ([]HoldRow, []string, error) {
	// rueidislock with its defaults re-renews on its own invalidations
	// (see openRueidislockNoLoop): at 10k leases that saturates this
	// machine, so 100k is held with NoLoopTracking only. distlock holds
	// 100k with loss events and without (each of its own writes makes the
	// masters send it a message: at 100k leases, 300,000 a second). Last,
	// distlock holds 100k while HoldBurners processes burn CPU beside the
	// masters (issue 16).
	holds := []holdCase{
		{10_000, []string{"distlock-3", "rueidislock-1-noloop", "rueidislock-1"}, 0},
		{100_000, []string{"distlock-3", "distlock-3-noevents", "rueidislock-1-noloop"}, 0},
		{100_000, []string{"distlock-3"}, HoldBurners},
	}
	if scale < 1 {
		loaded := holds[2]
		loaded.n = max(1, int(float64(loaded.n)*scale))
		holds = []holdCase{{1_000, holds[0].ids, 0}, loaded}
	}
	var rows []HoldRow
	var left []string
	for _, h := range holds {
		for _, p := range peersByID(h.ids...) {
			logf("hold: %s, %d leases, %d CPU burners", p.ID, h.n, h.burners)
			runtime.GC()
			row, err := HoldUnderLoad(m, p, h.n, h.burners)
			if err != nil {
				return rows, left, err
			}
			rows = append(rows, row)
			phase := fmt.Sprintf("hold %d", h.n)
			if h.burners > 0 {
				phase += fmt.Sprintf(", %d CPU burners", h.burners)
			}
			left = append(left, m.leftover(phase, []Peer{p})...)
		}
	}
	return rows, left, nil
}

func runHandoff(m *Masters, cases []HandoffCase, rounds int, per time.Duration, logf func(string, ...any)) ([]HandoffRow, error) {
	waits := make([][]time.Duration, len(cases))
	releases := make([][]time.Duration, len(cases))
	gaps := make([][]time.Duration, len(cases))
	spent := make([]time.Duration, len(cases))
	rows := make([]HandoffRow, len(cases))
	for round := range rounds {
		for i, c := range cases {
			logf("handoff round %d: %s, %d workers, %s clients", round+1, c.Peer.ID, c.Workers, c.clientsCell())
			var jobs []Job
			var elapsed time.Duration
			var failures int64
			if c.Processes {
				var err error
				if jobs, elapsed, failures, err = HandoffProcs(m, c.Peer, c.Workers, per); err != nil {
					return nil, err
				}
			} else {
				var lockers []Locker
				for range c.Clients {
					lk, err := m.open(c.Peer, TTL, 0)
					if err != nil {
						closeAll(lockers)
						return nil, err
					}
					lockers = append(lockers, lk)
				}
				jobs, elapsed, failures = Handoff(lockers, c.Workers, per)
				closeAll(lockers)
			}
			for _, j := range jobs {
				waits[i] = append(waits[i], j.Wait)
				releases[i] = append(releases[i], j.Release)
			}
			gaps[i] = append(gaps[i], Gaps(jobs)...)
			spent[i] += elapsed
			rows[i].Failures += failures
		}
	}
	for i, c := range cases {
		w := waits[i]
		slices.Sort(w)
		rows[i].HandoffCase = c
		rows[i].Jobs = len(w)
		rows[i].JobsPerSecond = float64(len(w)) / spent[i].Seconds()
		rows[i].WaitP50, rows[i].WaitP99, rows[i].WaitMax = quantile(w, 0.5), quantile(w, 0.99), quantile(w, 1)
		slices.Sort(releases[i])
		rows[i].ReleaseP50 = quantile(releases[i], 0.5)
		slices.Sort(gaps[i])
		rows[i].GapP50, rows[i].GapP99 = quantile(gaps[i], 0.5), quantile(gaps[i], 0.99)
	}
	return rows, nil
}

// StartMasters starts n redis-server masters on free loopback ports (never
// 6379) and returns them with a function that stops them all.
func StartMasters(n int) (*Masters, func(), error) {
	servers := make([]*redistest.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { servers[i], errs[i] = redistest.Start(redistest.Options{}) })
	}
	wg.Wait()
	m := &Masters{}
	stop := func() {
		for _, c := range m.admin {
			c.Close()
		}
		for _, s := range servers {
			if s != nil {
				s.Stop()
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		stop()
		return nil, nil, err
	}
	for _, s := range servers {
		m.Addrs = append(m.Addrs, s.Addr())
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			stop()
			return nil, nil, err
		}
		m.admin = append(m.admin, c)
		info, err := c.Do(context.Background(), c.B().Info().Section("server").Build()).ToString()
		if err != nil {
			stop()
			return nil, nil, err
		}
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
				pid, _ := strconv.Atoi(v)
				m.pids = append(m.pids, pid)
			}
		}
	}
	return m, stop, nil
}

// leftover returns the keys of peers' locks still on any master, waiting
// up to 3 s for them to go (distlock's waiting lists lapse after 1 s).
// distlock's fence counters are permanent by design and not counted.
func (m *Masters) leftover(phase string, peers []Peer) []string {
	var left []string
	for deadline := time.Now().Add(3 * time.Second); ; {
		left = left[:0]
		for i, c := range m.admin {
			keys, err := c.Do(context.Background(), c.B().Keys().Pattern("*").Build()).AsStrSlice()
			if err != nil {
				left = append(left, fmt.Sprintf("%s: master %d: %v", phase, i, err))
				continue
			}
			for _, k := range keys {
				if strings.HasPrefix(k, "distlock:fence:") {
					continue
				}
				for _, p := range peers {
					if strings.HasPrefix(k, p.KeyPrefix) {
						left = append(left, fmt.Sprintf("%s: master %d: %s", phase, i, k))
						break
					}
				}
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func openAll(m *Masters, peers []Peer) ([]Locker, error) {
	var lockers []Locker
	for _, p := range peers {
		lk, err := m.open(p, TTL, 0)
		if err != nil {
			closeAll(lockers)
			return nil, fmt.Errorf("%s: %w", p.ID, err)
		}
		lockers = append(lockers, lk)
	}
	return lockers, nil
}

func closeAll(lockers []Locker) {
	for _, lk := range lockers {
		lk.Close()
	}
}

func peerByID(id string) Peer {
	p, err := PeerByID(id)
	if err != nil {
		panic(err)
	}
	return p
}

func peersByID(ids ...string) []Peer {
	var ps []Peer
	for _, id := range ids {
		ps = append(ps, peerByID(id))
	}
	return ps
}

func machine() Machine {
	mc := Machine{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				mc.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		mc.LoadAverage = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		mc.Redis = strings.TrimSpace(string(out))
		if _, v, ok := strings.Cut(mc.Redis, "v="); ok {
			mc.Redis = "redis-server " + strings.Fields(v)[0]
		}
	}
	return mc
}
