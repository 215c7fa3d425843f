package benchmarks

import (
	"fmt"
	"html"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Command is what reproduces the committed results, from the repository root.
const Command = "make bench"

// Write writes results.md and chart.svg into dir.
func (r *Results) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.Markdown()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(r.SVG()), 0o644)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r *Results) latency(id string) *LatencyRow {
	for i := range r.Latency {
		if r.Latency[i].Peer.ID == id {
			return &r.Latency[i]
		}
	}
	return nil
}

func (r *Results) throughput(id string) *ThroughputRow {
	for i := range r.Throughput {
		if r.Throughput[i].Peer.ID == id {
			return &r.Throughput[i]
		}
	}
	return nil
}

// distance returns family's row of case dc ("floor", "distlock", ...).
func (r *Results) distance(dc DistanceCase, family string) *DistanceRow {
	for i := range r.Distance {
		d := &r.Distance[i]
		if d.Case.Name() == dc.Name() && d.Peer.Family() == family {
			return d
		}
	}
	return nil
}

func (r *Results) handoff(id string, workers, clients int, procs bool) *HandoffRow {
	for i := range r.Handoff {
		h := &r.Handoff[i]
		if h.Peer.ID == id && h.Workers == workers && h.Clients == clients && h.Processes == procs {
			return h
		}
	}
	return nil
}

func (r *Results) alloc(id string) *AllocRow {
	for i := range r.Allocs {
		if a := &r.Allocs[i]; a.Peer.ID == id {
			return a
		}
	}
	return nil
}

// Goal is one of issue 6's goals, as measured.
type Goal struct {
	What, Target, Measured string
	Met                    bool
}

// Goals evaluates issue 6's goals (the handoff's as issue 14 restated it) on 3 masters, each a ratio within this run.
func (r *Results) Goals() []Goal {
	var goals []Goal
	if d, f := r.throughput("distlock-3"), r.throughput("floor-3"); d != nil && f != nil {
		goals = append(goals, Goal{"throughput, 64 goroutines, fencing included", "≥ 0.90× floor",
			ratio(d.PerSecond, f.PerSecond) + " floor", d.PerSecond >= 0.9*f.PerSecond})
	}
	if d, f := r.latency("distlock-3"), r.latency("floor-3"); d != nil && f != nil {
		goals = append(goals, Goal{"uncontended acquire p50, 1 goroutine", "≤ 1.10× floor",
			ratio(float64(d.AcquireP50), float64(f.AcquireP50)) + " floor", float64(d.AcquireP50) <= 1.1*float64(f.AcquireP50)})
		goals = append(goals, Goal{"uncontended acquire+release p50, 1 goroutine", "≤ 1.10× floor",
			ratio(float64(d.CycleP50), float64(f.CycleP50)) + " floor", float64(d.CycleP50) <= 1.1*float64(f.CycleP50)})
	}
	if d := r.handoff("distlock-3", 8, 1, false); d != nil {
		goals = append(goals, Goal{"handoff, 8 workers, one Client: p99 wait", "≤ 25 ms", ms(d.WaitP99), d.WaitP99 <= 25*time.Millisecond})
		if p := r.handoff("rueidislock-1", 8, 1, false); p != nil {
			goals = append(goals, Goal{"handoff, 8 workers, one Client: jobs/s", "≥ 1.00× rueidislock",
				ratio(d.JobsPerSecond, p.JobsPerSecond) + " rueidislock", d.JobsPerSecond >= p.JobsPerSecond})
		}
	}
	// Issue 16, goal 4: 8 workers in 8 Clients, separate processes,
	// against rueidislock's 8 workers sharing one Locker.
	if d := r.handoff("distlock-3", 8, 8, true); d != nil {
		if p := r.handoff("rueidislock-1", 8, 1, false); p != nil {
			measured := ratio(d.JobsPerSecond, p.JobsPerSecond) + " rueidislock"
			if q := r.handoff("rueidislock-1", 8, 8, true); q != nil {
				// The peer in the same setting, for scale.
				measured += fmt.Sprintf(" (rueidislock in 8 processes: %s)", ratio(q.JobsPerSecond, p.JobsPerSecond))
			}
			goals = append(goals, Goal{"handoff, 8 workers, 8 Clients in 8 processes: jobs/s", "≥ 0.90× rueidislock (one Locker)",
				measured, d.JobsPerSecond >= 0.9*p.JobsPerSecond})
		}
		goals = append(goals, Goal{"handoff, 8 workers, 8 Clients in 8 processes: p99 wait", "≤ 25 ms", ms(d.WaitP99), d.WaitP99 <= 25*time.Millisecond})
	}
	// Issue 16, goal 3: allocations per cycle.
	if d, f := r.alloc("distlock-3"), r.alloc("floor-3"); d != nil && f != nil {
		goals = append(goals, Goal{"allocations per acquire+release, 1 goroutine", "≤ 2× floor",
			ratio(float64(d.AllocsPerOp), float64(f.AllocsPerOp)) + " floor", d.AllocsPerOp <= 2*f.AllocsPerOp})
	}
	// Issue 16: a slow minority costs nothing.
	for _, dc := range DistanceCases {
		d, f := r.distance(dc, "distlock"), r.distance(dc, "floor")
		if d == nil || f == nil {
			continue
		}
		for _, x := range []struct {
			what   string
			dv, fv time.Duration
		}{{"acquire", d.AcquireP50, f.AcquireP50}, {"release", d.ReleaseP50, f.ReleaseP50}} {
			goals = append(goals, Goal{fmt.Sprintf("%s p50, %s", x.what, dc.Name()), "≤ 1.10× floor",
				ratio(float64(x.dv), float64(x.fv)) + " floor", float64(x.dv) <= 1.1*float64(x.fv)})
		}
	}
	// Issue 16, goal 5: leases held under load, none lost.
	if h := r.holdUnderLoad("distlock"); h != nil {
		measured := fmt.Sprint(h.Lost)
		if h.Taken < h.Leases {
			measured += fmt.Sprintf(" (%s not taken)", thousands(float64(h.Leases-h.Taken)))
		}
		goals = append(goals, Goal{fmt.Sprintf("%s leases under load, %d CPU burners: leases lost", thousands(float64(h.Leases)), h.Burners), "0",
			measured, h.Lost == 0 && h.Taken == h.Leases})
	}
	return goals
}

// holdUnderLoad returns family's row of workload (d) held beside CPU
// burners.
func (r *Results) holdUnderLoad(family string) *HoldRow {
	for i := range r.Hold {
		if h := &r.Hold[i]; h.Burners > 0 && h.Peer.Family() == family {
			return h
		}
	}
	return nil
}

// load is the load column of workload (d): what ran beside the masters.
func (h HoldRow) load() string {
	if h.Burners == 0 {
		return "none"
	}
	return fmt.Sprintf("%d CPU burners (%.2f s CPU while holding)", h.Burners, h.BurnersCPU.Seconds())
}

// Markdown renders the run as the tables of results.md.
func (r *Results) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	mc := r.Machine
	p("# distlock beside its peers\n\n")
	p("Written by `%s` (`go run ./cmd/report` in `benchmarks/`); every table is one run, on the same redis-server masters, peers interleaved or back to back. Compare within this file, not across runs: the machine is shared.\n\n", Command)
	p("| | |\n|---|---|\n")
	p("| date | %s – %s UTC |\n", r.Start.Format("2006-01-02 15:04:05"), r.End.Format("15:04:05"))
	p("| machine | %d CPUs (`nproc`), GOMAXPROCS %d, %s, %s |\n", mc.NumCPU, mc.GOMAXPROCS, mc.CPUModel, mc.OS)
	p("| load average at start | %s (shared with other users' tests) |\n", mc.LoadAverage)
	p("| Redis | %s, 5 local masters on loopback, no persistence; peers on fewer masters use the first ones |\n", mc.Redis)
	p("| Go | %s |\n", mc.Go)
	p("| `time.Sleep(1ms)` | %s (median of 200) |\n", ms(mc.Sleep1ms))
	p("| `time.Sleep(1ms)` while one PING to each of 3 masters is answered | %s (median of 200) |\n", ms(mc.Sleep1msPings))
	p("| peers | redsync v4.18.1 over go-redis v9.23.0; bsm/redislock v0.9.4 over go-redis v9.23.0; rueidislock in rueidis v1.0.79; floor on rueidis v1.0.79 |\n\n")

	p("## Goals (issues 4, 6 and 16), 3 and 5 masters, ratios within this run\n\n")
	p("| goal | target | measured | met |\n|---|---|---|---|\n")
	for _, g := range r.Goals() {
		met := "no"
		if g.Met {
			met = "yes"
		}
		p("| %s | %s | %s | %s |\n", g.What, g.Target, g.Measured, met)
	}

	p("\n## (a) Uncontended latency: one goroutine, acquire then release, one name\n\n")
	p("Peers interleaved: 3 rounds, each peer about 1 s per round. Acquire is the acquire call alone; cycle is acquire+release.\n\n")
	p("| peer | cycles | acquire p50 | acquire p99 | cycle p50 | cycle p99 | acquire p50 vs floor | cycle p50 vs floor |\n|---|---|---|---|---|---|---|---|\n")
	if f := r.latency("floor-3"); f != nil {
		for _, l := range r.Latency {
			p("| %s | %d | %s | %s | %s | %s | %s | %s |\n", l.Peer.Label, l.Cycles, ms(l.AcquireP50), ms(l.AcquireP99), ms(l.CycleP50), ms(l.CycleP99),
				ratio(float64(l.AcquireP50), float64(f.AcquireP50)), ratio(float64(l.CycleP50), float64(f.CycleP50)))
		}
	}

	p("\n## (b) Throughput: 64 goroutines, each on its own name, acquire+release\n\n")
	p("Peers interleaved: 3 rounds, each peer about 1 s per round.\n\n")
	p("Client CPU is this process's user+system time per cycle; masters CPU is all redis-server processes' per cycle (from /proc), which share the machine's cores with the client.\n\n")
	p("| peer | cycles | cycles/s | vs floor | client CPU per cycle | masters CPU per cycle |\n|---|---|---|---|---|---|\n")
	if f := r.throughput("floor-3"); f != nil {
		for _, t := range r.Throughput {
			p("| %s | %d | %s | %s | %.0f µs | %.0f µs |\n", t.Peer.Label, t.Cycles, thousands(t.PerSecond), ratio(t.PerSecond, f.PerSecond),
				float64(t.ClientCPU.Nanoseconds())/1000, float64(t.MastersCPU.Nanoseconds())/1000)
		}
	}

	p("\n## (c) Handoff: workers on one lock, hold %v, think %v\n\n", HandoffHold, HandoffThink)
	p("Cases interleaved: 2 rounds, each case about 1.5 s per round. Wait is from the acquire call to its return; a failure is an acquire that did not succeed within %v. redsync and bsm/redislock wait by polling every %v; distlock and rueidislock are woken by notifications. In this run `time.Sleep(1ms)` took %s (median of 200), so no lock can exceed %.0f jobs/s; a lock whose process does network I/O while a holder sleeps does less (the Go runtime's poller, woken by the replies, sleeps again with millisecond precision, so the holder's 1 ms sleep lasts longer), and each job also pays for whatever round trips the handoff needs: distlock within one Client hands over in one round trip, which draws the next holder's token on a majority where the keys still hold the value. The rows with a process per client run each worker in a process of its own with one Client (one Locker for rueidislock), as on separate machines (issue 16's goal 4); their 8 processes share the 2 cores with the masters. The ceiling row is a lock that is one channel in this process, no Redis: the best any lock can do here. Period is 1 / jobs/s: the lock's busy time per job. Gap is from a holder calling Release to the next holder's acquire returning: what each handoff costs beyond the hold.\n\n", AcquireTimeout, PollInterval, ms(r.Machine.Sleep1ms), 1/r.Machine.Sleep1ms.Seconds())
	p("| peer | workers | clients | jobs | jobs/s | vs rueidislock (same workers) | period | wait p50 | wait p99 | wait max | release p50 | gap p50 | gap p99 | failures |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, h := range r.Handoff {
		vs := "–"
		if ref := r.handoff("rueidislock-1", h.Workers, 1, false); ref != nil {
			vs = ratio(h.JobsPerSecond, ref.JobsPerSecond)
		}
		period := "–"
		if h.JobsPerSecond > 0 {
			period = fmt.Sprintf("%.2f ms", 1000/h.JobsPerSecond)
		}
		p("| %s | %d | %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", h.Peer.Label, h.Workers, h.clientsCell(), h.Jobs, h.JobsPerSecond, vs, period,
			ms(h.WaitP50), ms(h.WaitP99), ms(h.WaitMax), ms(h.ReleaseP50), ms(h.GapP50), ms(h.GapP99), h.Failures)
	}

	p("\n## (d) Held leases, renewed by the peer itself\n\n")
	p("One instance holds N leases (TTL %v, renewed every %v) for %v after the last was taken. Only distlock and rueidislock renew by themselves; redsync (`Mutex.Extend`) and bsm/redislock (`Lock.Refresh`) leave renewal to the caller, so there is nothing of theirs to measure. rueidislock runs one goroutine per held lock and, with its defaults, each renewal invalidates the key on its own tracking connection and triggers another renewal at once; `NoLoopTracking` (redis ≥ 7.0.5) stops that, so it is held both ways at 10k and with `NoLoopTracking` only at 100k. Min PTTL is the least TTL master 0 reported over a sample of 1,000 leases read every 100 ms (a lease renewed on time stays above TTL − renewal interval = %v); a key gone after it was seen counts as 0, and keys master 0 never had while holding (a lease holds on a majority, which need not include master 0: its acquire there answered late) are counted beside it. Slowest master PING is the slowest answer to a PING sent to each of the peer's masters every 100 ms while taking and holding (on its own connection, not the peer's): issue 16 asks for no lease lost while the masters answer within a third of the TTL (%v). Leases are taken by 256 goroutines for at most 30 s (an acquire still waiting then is cut short); a failed attempt is retried (up to 5 attempts per lease) and counted, a lease that failed 5 times or was still waiting at 30 s is not taken, and what was taken is held. distlock's acquires wait while its renewals are late on a majority of masters (renewals before new acquires), so what its masters cannot renew in time shows as not taken rather than lost: rueidislock gives up on a key after its `TryNextAfter` (20 ms) when 256 goroutines take leases at once on this machine. Client CPU is this process's user+system time while holding, masters CPU all redis-server processes' (the hold lasts 3.5 s on 2 cores: 7 CPU-seconds at most, shared with other users); heap and goroutines are read at the end of the hold. Masters CPU per renewal is the masters' CPU while holding over the renewals they ran meanwhile (leases held × hold time / renewal interval × masters; everything a master did then counts, the sample's PTTL reads and the PINGs included): a master that gets c of a core's time can renew every lease of one Client in time while they number at most c × renewal interval / that figure, whatever the client does. In the row under load (issue 16), distlock holds its leases while %d CPU-burning processes (each a separate `sh` busy loop) run beside the masters from before the first lease is taken until the last is released: the load column gives their CPU time while holding, taken from the same cores as the client's and the masters'.\n\n", HoldTTL, HoldRenew, 3*HoldRenew+HoldRenew/2, HoldTTL-HoldRenew, HoldTTL/3, HoldBurners)
	p("| peer | load | leases asked | leases held | taking them | attempts retried | not taken | lost (of which while taking) | min PTTL seen | slowest master PING | client CPU while holding | masters CPU while holding | masters CPU per renewal | Go heap | goroutines | releasing them |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, h := range r.Hold {
		p("| %s | %s | %s | %s | %.2f s | %d | %d | %d (%d) | %s | %s | %.2f s | %.2f s | %.1f µs | %.0f MB | %s | %.2f s |\n", h.Peer.Label, h.load(), thousands(float64(h.Leases)), thousands(float64(h.Taken)), h.AcquireTime.Seconds(), h.Retries, h.HoldFailures, h.Lost, h.LostTaking,
			h.minPTTLCell(), ms(h.SlowestPing), h.CPU.Seconds(), h.MastersCPU.Seconds(), float64(h.MastersCPUPerRenewal().Nanoseconds())/1000, h.HeapMB, thousands(float64(h.Goroutines)), h.ReleaseTime.Seconds())
	}
	for _, h := range r.Hold {
		if len(h.LostWhy) == 0 {
			continue
		}
		whys := make([]string, 0, len(h.LostWhy))
		for why := range h.LostWhy {
			whys = append(whys, why)
		}
		sort.Slice(whys, func(i, j int) bool { return h.LostWhy[whys[i]] > h.LostWhy[whys[j]] })
		p("\nWhy leases were lost (%s, %s, %s leases): ", h.Peer.Label, h.load(), thousands(float64(h.Leases)))
		for k, why := range whys {
			if k > 0 {
				p("; ")
			}
			p("%s: \"%s\"", thousands(float64(h.LostWhy[why])), why)
		}
		p("\n")
	}

	p("\n## (e) Allocations per acquire+release, one goroutine\n\n")
	p("`testing.Benchmark` with `ReportAllocs`; counts are the whole process's, so they include what each client's own goroutines allocate.\n\n")
	p("| peer | allocs/op | B/op | ns/op | iterations |\n|---|---|---|---|---|\n")
	for _, a := range r.Allocs {
		p("| %s | %d | %s | %s | %d |\n", a.Peer.Label, a.AllocsPerOp, thousands(float64(a.BytesPerOp)), thousands(float64(a.NsPerOp)), a.N)
	}

	p("\n## (f) Masters at different distances: one goroutine, acquire then release, one name\n\n")
	p("A proxy in front of each master delays its answers by twice the case's one-way delay (the round trip of such a link). Peers interleaved: 3 rounds, each peer about 1 s per round. The limit is the round trip to the slowest master of the fastest majority: what one majority operation cannot beat. The floor stops at the majority both ways; on each master its delete waits for that master's SET to be answered.\n\n")
	p("| case | peer | cycles | acquire p50 | acquire p99 | release p50 | release p99 | cycle p50 | cycle p99 | limit | acquire p50 vs floor | release p50 vs floor |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, d := range r.Distance {
		f := r.distance(d.Case, "floor")
		if f == nil {
			continue
		}
		p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", d.Case.Name(), d.Peer.Label, d.Cycles, ms(d.AcquireP50), ms(d.AcquireP99), ms(d.ReleaseP50), ms(d.ReleaseP99),
			ms(d.CycleP50), ms(d.CycleP99), ms(d.Case.Limit()), ratio(float64(d.AcquireP50), float64(f.AcquireP50)), ratio(float64(d.ReleaseP50), float64(f.ReleaseP50)))
	}

	p("\n## Keys left behind\n\n")
	if len(r.Leftover) == 0 {
		p("None: after each workload no lock key of any peer remained on any master (distlock's fence counters are permanent by design).\n")
	} else {
		for _, l := range r.Leftover {
			p("- %s\n", l)
		}
	}
	return b.String()
}

// bar is one bar of a chart panel.
type bar struct {
	label string
	value float64
	text  string
	ours  bool
}

// SVG renders five panels of horizontal bars: throughput, uncontended
// cycle p50, handoff jobs/s and handoff p99 wait (8 workers), and the
// cycle p50 with masters at different distances. Plain SVG
// written here: a plotting library would be the module's largest
// dependency for five bar charts.
func (r *Results) SVG() string {
	var panels []struct {
		title string
		bars  []bar
	}
	add := func(title string, bars []bar) {
		panels = append(panels, struct {
			title string
			bars  []bar
		}{title, bars})
	}
	var bs []bar
	for _, t := range r.Throughput {
		bs = append(bs, bar{t.Peer.Label, t.PerSecond, thousands(t.PerSecond), t.Peer.Family() == "distlock"})
	}
	add("Throughput, 64 goroutines on distinct names: acquire+release cycles/s (higher is better)", bs)
	bs = nil
	for _, l := range r.Latency {
		v := float64(l.CycleP50.Microseconds()) / 1000
		bs = append(bs, bar{l.Peer.Label, v, fmt.Sprintf("%.2f ms", v), l.Peer.Family() == "distlock"})
	}
	add("Uncontended acquire+release, one goroutine: p50 (lower is better)", bs)
	bs = nil
	var ws []bar
	for _, h := range r.Handoff {
		if h.Workers != 8 {
			continue
		}
		label := h.Peer.Label
		switch {
		case h.Processes:
			label += fmt.Sprintf(", %d clients in %d processes", h.Clients, h.Clients)
		case h.Clients > 1:
			label += fmt.Sprintf(", %d clients", h.Clients)
		}
		bs = append(bs, bar{label, h.JobsPerSecond, fmt.Sprintf("%.0f", h.JobsPerSecond), h.Peer.Family() == "distlock"})
		v := float64(h.WaitP99.Microseconds()) / 1000
		ws = append(ws, bar{label, v, fmt.Sprintf("%.1f ms", v), h.Peer.Family() == "distlock"})
	}
	add("Handoff, 8 workers on one lock (hold 1 ms, think 1 ms): jobs/s (higher is better)", bs)
	add("Handoff, 8 workers on one lock: p99 wait for the lock (lower is better)", ws)
	if len(DistanceCases) > 0 {
		dc := DistanceCases[0]
		bs = nil
		for _, d := range r.Distance {
			if d.Case.Name() != dc.Name() {
				continue
			}
			v := float64(d.CycleP50.Microseconds()) / 1000
			bs = append(bs, bar{d.Peer.Label, v, fmt.Sprintf("%.1f ms", v), d.Peer.Family() == "distlock"})
		}
		add(fmt.Sprintf("%s: acquire+release p50 (lower is better; limit %s per majority operation)", dc.Name(), ms(dc.Limit())), bs)
	}

	const width, labelW, barW, rowH = 860, 300, 460, 22
	var b strings.Builder
	y := 40
	for _, pn := range panels {
		y += 30 + rowH*len(pn.bars) + 16
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, y)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">distlock beside its peers — %s, %d CPUs, %s (one run; see results.md)</text>`+"\n",
		r.Start.Format("2006-01-02"), r.Machine.NumCPU, html.EscapeString(r.Machine.Redis))
	y = 40
	for _, pn := range panels {
		y += 20
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y, html.EscapeString(pn.title))
		y += 10
		maxV := 0.0
		for _, br := range pn.bars {
			maxV = max(maxV, br.value)
		}
		for _, br := range pn.bars {
			w := 0.0
			if maxV > 0 {
				w = br.value / maxV * barW
			}
			fill := "#9aa5b1"
			if br.ours {
				fill = "#2b6cb0"
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-6, y+15, html.EscapeString(br.label))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, y+3, w, rowH-6, fill)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(labelW)+w+4, y+15, html.EscapeString(br.text))
			y += rowH
		}
		y += 16
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// minPTTLCell is the min PTTL column: the least PTTL, and how many of the
// sampled keys master 0 never had.
func (h HoldRow) minPTTLCell() string {
	cell := fmt.Sprintf("%.2f s", h.MinPTTL.Seconds())
	if h.Absent > 0 {
		cell += fmt.Sprintf(" (%s of %s never on master 0)", thousands(float64(h.Absent)), thousands(float64(h.Sampled)))
	}
	return cell
}
