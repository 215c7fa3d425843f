package script

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/distlock/distlock/internal/redistest"
	"github.com/redis/rueidis"
)

// BenchmarkMasterCPU measures what one master spends (its CPU time, INFO
// cpu) per uncontended acquire+release pair on a free key: acquire.lua by
// EVALSHA and release.lua by EVAL with the keys and arguments distlock
// sends, 64 pairs pipelined at a time, beside the least a Redlock master
// must do (SET NX PX, then a GET-compare-DEL script by EVALSHA), beside
// the least a fenced Redlock master must do (floor-fenced: SET NX PX and
// the counter's INCR in one script by EVALSHA, then the same delete: a
// token needs the INCR in the same script as the SET, or one is drawn for
// an acquire that failed and a failed one's SET is not undone), and beside
// release.lua sent by EVALSHA:
//
//	go test -run '^$' -bench MasterCPU -benchtime 20000x ./internal/script/
//
// Pipelined, so it leaves out most of the per-command network cost the
// masters pay under BenchmarkAcquireRelease, and shows the scripts' own.
// floor-fenced against floor is what running a script at all costs a
// master on each acquire: the part of distlock's cost that no fenced
// client of Redis scripts can avoid. The rows between split the rest.
func BenchmarkMasterCPU(b *testing.B) {
	s := redistest.StartN(b, 1, redistest.Options{})[0]
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, DisableCache: true, DisableRetry: true})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	floorDel := New(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	for _, tc := range []struct {
		name     string
		acq, rel *Script // acq nil: SET NX PX
		minimal  bool    // acq and rel get only the lock key, the counter, the value and the TTL
	}{
		{"floor", nil, floorDel, true},
		{"floor-fenced", fencedFloorAcquire, floorDel, true},
		// The rows between split what distlock's scripts cost beyond
		// floor-fenced (docs/design.md, "What a cycle costs"): the same
		// scripts given distlock's keys and arguments; then distlock's
		// acquire; then distlock's release, by EVALSHA; then by EVAL.
		{"floor-fenced-args", fencedFloorAcquire, floorDel, false},
		{"acquire+floor-delete", Acquire, floorDel, false},
		{"floor-fenced+release-by-sha", fencedFloorAcquire, New(Release.src), false},
		{"release-by-sha", Acquire, New(Release.src), false},
		{"scripts", Acquire, Release, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pairs(b, s, rc, tc.acq, tc.rel, tc.minimal)
		})
	}
}

// fencedFloorAcquire is the least a fenced acquire can run on a master:
// the lock key set if free, and the lock's counter drawn with it.
var fencedFloorAcquire = New(`if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, redis.call('INCR', KEYS[2])} end return {0, 0}`)

func pairs(b *testing.B, s *redistest.Server, rc rueidis.Client, acq, rel *Script, minimal bool) {
	ctx := context.Background()
	for _, sc := range []*Script{acq, rel} {
		if sc != nil && sc.sha != "" {
			if err := sc.Load(ctx, rc); err != nil {
				b.Fatal(err)
			}
		}
	}
	const batch = 64
	suffix := "-owner@host-12345"
	cpu0 := serverCPU(b, s)
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		acqs, rels := make(rueidis.Commands, n), make(rueidis.Commands, n)
		keys, values := make([]string, n), make([]string, n)
		for i := range n {
			keys[i] = "distlock:bench-" + strconv.Itoa(i)
			values[i] = fmt.Sprintf("%032x", done+i) + suffix
			if acq == nil {
				acqs[i] = rc.B().Set().Key(keys[i]).Value(values[i]).Nx().PxMilliseconds(10000).Build()
				continue
			}
			tag := "{" + strconv.Itoa(i) + "}"
			if minimal {
				acqs[i] = acq.Cmd(rc.B(), []string{keys[i], "distlock:fence:" + tag}, []string{values[i], "10000"})
				continue
			}
			k := []string{keys[i], "distlock:fence:" + tag, "distlock:wait:" + tag + keys[i], "distlock:lapse:" + tag + keys[i], "distlock:fence:dead:" + tag + values[i][:32], "distlock:fence:left:" + tag + keys[i]}
			acqs[i] = acq.Cmd(rc.B(), k, []string{values[i], "10000", "", "1", "30000", "", "w" + strconv.Itoa(i), "0"})
		}
		for i, r := range rc.DoMulti(ctx, acqs...) {
			if acq == nil {
				if err := r.Error(); err != nil {
					b.Fatal(err)
				}
				rels[i] = rel.Cmd(rc.B(), keys[i:i+1], values[i:i+1])
				continue
			}
			a, err := r.AsIntSlice()
			if err != nil || a[0] != 1 {
				b.Fatalf("acquire: %v %v", a, err)
			}
			if minimal {
				rels[i] = rel.Cmd(rc.B(), keys[i:i+1], values[i:i+1])
				continue
			}
			tag := "{" + strconv.Itoa(i) + "}"
			rels[i] = rel.Cmd(rc.B(), []string{keys[i], "distlock:fence:" + tag}, []string{values[i], "", strconv.FormatInt(a[1], 10)})
		}
		for _, r := range rc.DoMulti(ctx, rels...) {
			if d, err := r.AsInt64(); err != nil || d != 1 {
				b.Fatalf("release: %v %v", d, err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric((serverCPU(b, s)-cpu0)*1e6/float64(b.N), "master-cpu-µs/pair")
}

// serverCPU returns s's CPU time so far in seconds, user and system.
func serverCPU(b *testing.B, s *redistest.Server) float64 {
	b.Helper()
	cpu, err := s.CPU()
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}
