package benchmarks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/distlock/distlock/internal/quorum"
	"github.com/distlock/distlock/internal/redistest"
)

// A DistanceCase puts masters at different distances from the client: a
// proxy in front of master i delays every answer by twice Delays[i], the
// round trip of a link with that one-way delay.
type DistanceCase struct {
	Delays []time.Duration
}

// Name says the case as the table does: "3 masters at 1/2/15 ms".
func (c DistanceCase) Name() string {
	ms := make([]string, len(c.Delays))
	for i, d := range c.Delays {
		ms[i] = fmt.Sprint(d.Milliseconds())
	}
	return fmt.Sprintf("%d masters at %s ms", len(c.Delays), strings.Join(ms, "/"))
}

// Limit is the physical limit of one majority operation: the round trip
// to the slowest master of the fastest majority.
func (c DistanceCase) Limit() time.Duration {
	d := slices.Clone(c.Delays)
	slices.Sort(d)
	return 2 * d[quorum.Majority(len(d))-1]
}

// DistanceCases are workload (f)'s cases, issue 16's.
var DistanceCases = []DistanceCase{
	{[]time.Duration{time.Millisecond, 2 * time.Millisecond, 15 * time.Millisecond}},
	{[]time.Duration{time.Millisecond, time.Millisecond, 2 * time.Millisecond, 15 * time.Millisecond, 40 * time.Millisecond}},
}

// DistanceRow is workload (f): one goroutine, uncontended acquire then
// release, with masters at different distances.
type DistanceRow struct {
	Case                   DistanceCase
	Peer                   Peer
	Cycles                 int
	AcquireP50, AcquireP99 time.Duration
	ReleaseP50, ReleaseP99 time.Duration
	CycleP50, CycleP99     time.Duration
}

// Distance runs case dc: the peers (on len(dc.Delays) masters each) in
// turn, rounds times, each for per, on one goroutine.
func Distance(m *Masters, dc DistanceCase, peers []Peer, rounds int, per time.Duration) ([]DistanceRow, error) {
	n := len(dc.Delays)
	if n > len(m.Addrs) {
		return nil, fmt.Errorf("benchmarks: %s needs %d masters, the run has %d", dc.Name(), n, len(m.Addrs))
	}
	addrs, closeProxies, err := delayingProxies(m.Addrs[:n], dc.Delays)
	if err != nil {
		return nil, err
	}
	defer closeProxies()
	lockers := make([]Locker, len(peers))
	defer closeOpened(lockers)
	for i, p := range peers {
		if p.Masters != n {
			return nil, fmt.Errorf("benchmarks: %s is on %d masters, %s on %d", p.ID, p.Masters, dc.Name(), n)
		}
		l, err := p.Open(addrs, TTL, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.ID, err)
		}
		lockers[i] = l
	}
	samples := make([]distanceSamples, len(peers))
	ctx := context.Background()
	for range rounds {
		for i, lk := range lockers {
			if err := samples[i].cycleFor(ctx, lk, peers[i].ID, per); err != nil {
				return nil, err
			}
		}
	}
	rows := make([]DistanceRow, len(peers))
	for i, p := range peers {
		rows[i] = samples[i].row(dc, p)
	}
	return rows, nil
}

// delayingProxies starts a proxy in front of each of addrs that delays
// every answer by twice the master's delay, and returns the proxies'
// addresses and a function that closes them.
func delayingProxies(addrs []string, delays []time.Duration) ([]string, func(), error) {
	var proxies []*redistest.Proxy
	closeAll := func() {
		for _, p := range proxies {
			p.Close()
		}
	}
	via := make([]string, len(delays))
	for i, d := range delays {
		p, err := redistest.NewProxy(addrs[i])
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		proxies = append(proxies, p)
		p.SetLatency(2 * d)
		via[i] = p.Addr()
	}
	return via, closeAll, nil
}

// closeOpened closes the lockers opened so far (the others are nil).
func closeOpened(lockers []Locker) {
	for _, l := range lockers {
		if l != nil {
			l.Close()
		}
	}
}

// distanceSamples are one peer's acquire, release and whole-cycle times.
type distanceSamples struct {
	acq, rel, cyc []time.Duration
}

// cycleFor runs acquire then release of the name "distance" on lk, one
// after the other, for per, and records their times; id names the peer in
// errors.
func (s *distanceSamples) cycleFor(ctx context.Context, lk Locker, id string, per time.Duration) error {
	for end := time.Now().Add(per); time.Now().Before(end); {
		t0 := time.Now()
		l, err := lk.Acquire(ctx, "distance")
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		t1 := time.Now()
		if err := l.Release(ctx); err != nil {
			return fmt.Errorf("%s: release: %w", id, err)
		}
		t2 := time.Now()
		s.acq = append(s.acq, t1.Sub(t0))
		s.rel = append(s.rel, t2.Sub(t1))
		s.cyc = append(s.cyc, t2.Sub(t0))
	}
	return nil
}

// row sorts the samples and returns peer p's row of case dc.
func (s *distanceSamples) row(dc DistanceCase, p Peer) DistanceRow {
	for _, d := range [][]time.Duration{s.acq, s.rel, s.cyc} {
		slices.Sort(d)
	}
	return DistanceRow{Case: dc, Peer: p, Cycles: len(s.acq),
		AcquireP50: quantile(s.acq, 0.5), AcquireP99: quantile(s.acq, 0.99),
		ReleaseP50: quantile(s.rel, 0.5), ReleaseP99: quantile(s.rel, 0.99),
		CycleP50: quantile(s.cyc, 0.5), CycleP99: quantile(s.cyc, 0.99)}
}

// distancePeers returns the peers of workload (f) on n masters: the floor
// that releases at a majority, distlock and redsync.
func distancePeers(n int) []Peer {
	return peersByID(fmt.Sprintf("floor-majority-%d", n), fmt.Sprintf("distlock-%d", n), fmt.Sprintf("redsync-%d", n))
}
