package benchmarks

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// HandoffCase is one configuration of workload (c).
type HandoffCase struct {
	Peer    Peer
	Workers int
	Clients int // instances of the peer, workers spread over them
	// Processes puts each worker in a process of its own with one
	// instance (HandoffProcs), as on separate machines; Clients is then
	// Workers.
	Processes bool
}

// clientsCell is how the table and chart name a case's instances.
func (c HandoffCase) clientsCell() string {
	if c.Processes {
		return fmt.Sprintf("%d, a process each", c.Clients)
	}
	return strconv.Itoa(c.Clients)
}

// HandoffRow is workload (c): workers on one lock, hold 1 ms, think 1 ms.
type HandoffRow struct {
	HandoffCase
	Jobs          int
	JobsPerSecond float64
	WaitP50       time.Duration
	WaitP99       time.Duration
	WaitMax       time.Duration
	ReleaseP50    time.Duration // the Release call alone
	GapP50        time.Duration // holder calls Release → next acquire returns
	GapP99        time.Duration
	Failures      int64 // acquires that did not succeed within 10 s
}

// HandoffHold and HandoffThink are the handoff workload's times (issue 4, item 6).
const (
	HandoffHold  = time.Millisecond
	HandoffThink = time.Millisecond
	// AcquireTimeout bounds one acquire in the handoff workload: past it
	// the attempt counts as a failure.
	AcquireTimeout = 10 * time.Second
)

// A Job is one turn of a handoff worker: when its acquire returned and
// when it called and returned from Release.
type Job struct {
	Wait                    time.Duration // acquire call to return
	Acquired, ReleaseCalled time.Time
	Release                 time.Duration // the Release call
}

// Gaps returns, for jobs of one lock, the time from each holder calling
// Release to the next holder's acquire returning: what a handoff costs
// beyond the hold, sorted.
func Gaps(jobs []Job) []time.Duration {
	js := slices.Clone(jobs)
	slices.SortFunc(js, func(a, b Job) int { return a.Acquired.Compare(b.Acquired) })
	var gaps []time.Duration
	for i := 1; i < len(js); i++ {
		gaps = append(gaps, js[i].Acquired.Sub(js[i-1].ReleaseCalled))
	}
	slices.Sort(gaps)
	return gaps
}

// Handoff runs workers on one lock named "handoff" for d: each loops
// acquire, hold, release, think. The wait is from the acquire call to its
// return.
func Handoff(lockers []Locker, workers int, d time.Duration) (jobs []Job, elapsed time.Duration, failures int64) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	end := start.Add(d)
	for w := range workers {
		lk := lockers[w%len(lockers)]
		wg.Go(func() {
			mine, fails := work(lk, end)
			failed.Add(fails)
			mu.Lock()
			jobs = append(jobs, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return jobs, time.Since(start), failed.Load()
}

// work is one handoff worker: it loops acquire, hold, release, think on
// lk until end, and returns its jobs and how many acquires failed.
func work(lk Locker, end time.Time) (jobs []Job, failures int64) {
	for time.Now().Before(end) {
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), AcquireTimeout)
		l, err := lk.Acquire(ctx, "handoff")
		if err != nil {
			cancel()
			failures++
			continue
		}
		j := Job{Acquired: time.Now()}
		j.Wait = j.Acquired.Sub(t0)
		time.Sleep(HandoffHold)
		j.ReleaseCalled = time.Now()
		l.Release(context.Background())
		j.Release = time.Since(j.ReleaseCalled)
		jobs = append(jobs, j)
		cancel() // only now: rueidislock ties the lock to ctx
		time.Sleep(HandoffThink)
	}
	return jobs, failures
}
