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
	addrs := make([]string, n)
	for i, d := range dc.Delays {
		p, err := redistest.NewProxy(m.Addrs[i])
		if err != nil {
			return nil, err
		}
		defer p.Close()
		p.SetLatency(2 * d)
		addrs[i] = p.Addr()
	}
	lockers := make([]Locker, len(peers))
	defer func() {
		for _, l := range lockers {
			if l != nil {
				l.Close()
			}
		}
	}()
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
	ctx := context.Background()
	acq := make([][]time.Duration, len(peers))
	rel := make([][]time.Duration, len(peers))
	cyc := make([][]time.Duration, len(peers))
	for range rounds {
		for i, lk := range lockers {
			for end := time.Now().Add(per); time.Now().Before(end); {
				t0 := time.Now()
				l, err := lk.Acquire(ctx, "distance")
				if err != nil {
					return nil, fmt.Errorf("%s: %w", peers[i].ID, err)
				}
				t1 := time.Now()
				if err := l.Release(ctx); err != nil {
					return nil, fmt.Errorf("%s: release: %w", peers[i].ID, err)
				}
				t2 := time.Now()
				acq[i] = append(acq[i], t1.Sub(t0))
				rel[i] = append(rel[i], t2.Sub(t1))
				cyc[i] = append(cyc[i], t2.Sub(t0))
			}
		}
	}
	rows := make([]DistanceRow, len(peers))
	for i, p := range peers {
		for _, d := range [][]time.Duration{acq[i], rel[i], cyc[i]} {
			slices.Sort(d)
		}
		rows[i] = DistanceRow{Case: dc, Peer: p, Cycles: len(acq[i]),
			AcquireP50: quantile(acq[i], 0.5), AcquireP99: quantile(acq[i], 0.99),
			ReleaseP50: quantile(rel[i], 0.5), ReleaseP99: quantile(rel[i], 0.99),
			CycleP50: quantile(cyc[i], 0.5), CycleP99: quantile(cyc[i], 0.99)}
	}
	return rows, nil
}

// distancePeers returns the peers of workload (f) on n masters: the floor
// that releases at a majority, distlock and redsync.
func distancePeers(n int) []Peer {
	return peersByID(fmt.Sprintf("floor-majority-%d", n), fmt.Sprintf("distlock-%d", n), fmt.Sprintf("redsync-%d", n))
}
