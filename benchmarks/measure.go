package benchmarks

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/redis/rueidis"
)

// quantile returns the q-th quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// cpuTime returns the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// SleepP50 is the median time time.Sleep(d) takes here, over n sleeps: the
// handoff's hold and think are sleeps, so 1/SleepP50(1ms) bounds the jobs/s
// of any lock. With pings, each sleep has one PING sent to each of those
// clients as it starts, answered during it (as a lock that draws tokens,
// renews or reads while its holder sleeps would have): the Go runtime's
// poller, woken by the replies, sleeps again with millisecond precision.
func SleepP50(d time.Duration, n int, pings []rueidis.Client) time.Duration {
	s := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range s {
		for _, c := range pings {
			wg.Go(func() { c.Do(context.Background(), c.B().Ping().Build()) })
		}
		t0 := time.Now()
		time.Sleep(d)
		s[i] = time.Since(t0)
		wg.Wait()
	}
	slices.Sort(s)
	return quantile(s, 0.5)
}
