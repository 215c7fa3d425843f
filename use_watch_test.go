package distlock_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// collect returns the events on ch until none came for quiet.
func collect(ch <-chan distlock.Event, quiet time.Duration) []distlock.Event {
	var evs []distlock.Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		case <-time.After(quiet):
			return evs
		}
	}
}

// checkCycles fails unless evs is n times acquired then released.
func checkCycles(t *testing.T, evs []distlock.Event, n int) {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s %v missed=%d unseen=%v masters=%v\n", ev.Time.Format("05.000"), ev.Type, ev.Missed, ev.Unseen, ev.Masters)
	}
	if len(evs) != 2*n {
		t.Fatalf("%d events for %d holds; want %d:\n%s", len(evs), n, 2*n, b.String())
	}
	for i, ev := range evs {
		want := distlock.EventAcquired
		if i%2 == 1 {
			want = distlock.EventReleased
		}
		if ev.Type != want {
			t.Fatalf("event %d is %v; want %v:\n%s", i, ev.Type, want, b.String())
		}
	}
}

// TestUseWatchDashboardSkewedCleared: a dashboard watching through
// masters at skewed latency (0, 15, 30 ms), after another program cleared
// notify-keyspace-events, while a worker takes the lock back to back for
// 1 to 5 ms each time, without waiting for the dashboard.
func TestUseWatchDashboardSkewedCleared(t *testing.T) {
	servers := masters(t, 3)
	w, proxies := proxiedWatcher(t, servers)
	c := newClient(t, servers, distlock.Config{})
	const name = "dash"
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		waitSubscribers(t, s, name, true)
	}
	time.Sleep(100 * time.Millisecond)
	proxies[1].SetLatency(15 * time.Millisecond)
	proxies[2].SetLatency(30 * time.Millisecond)
	for _, s := range servers {
		if _, err := s.Do("CONFIG", "SET", "notify-keyspace-events", ""); err != nil {
			t.Fatal(err)
		}
	}
	const n = 25
	for i := range n {
		l, err := c.TryAcquire(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(1+i%5) * time.Millisecond)
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	checkCycles(t, collect(events, 1500*time.Millisecond), n)
}

// TestUseWatchDashboardSkewed: the same without clearing the flags.
func TestUseWatchDashboardSkewed(t *testing.T) {
	servers := masters(t, 3)
	w, proxies := proxiedWatcher(t, servers)
	c := newClient(t, servers, distlock.Config{})
	const name = "dash2"
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		waitSubscribers(t, s, name, true)
	}
	time.Sleep(100 * time.Millisecond)
	proxies[1].SetLatency(15 * time.Millisecond)
	proxies[2].SetLatency(30 * time.Millisecond)
	const n = 25
	for i := range n {
		l, err := c.TryAcquire(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(1+i%5) * time.Millisecond)
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	checkCycles(t, collect(events, 1500*time.Millisecond), n)
}

// TestUseWatchDashboardChurn: found by the use tester. A dashboard
// watches through masters at skewed latency (0, 5, 20 ms) while a worker
// takes the lock 40 times back to back for 1 to 5 ms each; another
// program clears notify-keyspace-events on every master before hold 10
// and again before hold 30.
//
// docs/watch.md: when another program changes the flags, "a
// script's message whose keyspace event does not follow ... makes the
// watch read the setting again (at most once a second) ... where the
// flags had gone, they are taken as they came, so short holds are still
// reported"; every hold a majority reported, of 1 ms or more, gives
// exactly one acquired then one released.
//
// Got: when the second clearing comes within that second (here ~100 ms
// after the first, which the watch had already repaired), 4 to 5 of the
// 40 holds make no event at all (70-72 events, not 80). The same run
// with the second clearing 1.2 s after the first reports all 40
// ("cleared twice, 1.2s apart" passes), as does a master restarted
// empty mid-run ("restarted").
//
// Proposed fix (watch.go): while the once-a-second limit keeps the watch
// from reading the setting again, do not drop a master's unconfirmed
// script messages: keep holding them and read CONFIG GET as soon as the
// limit allows (schedule it, rather than skipping it), then take or drop
// them by what it says; or, once a master has been seen to lose its flags,
// take its unconfirmed messages as they come until a read shows the
// flags back.
func TestUseWatchDashboardChurn(t *testing.T) {
	t.Run("cleared twice, 100ms apart", func(t *testing.T) { dashboardChurn(t, true, false, 0) })
	t.Run("cleared twice, 1.2s apart", func(t *testing.T) { dashboardChurn(t, true, false, 1200*time.Millisecond) })
	t.Run("restarted", func(t *testing.T) { dashboardChurn(t, false, true, 0) })
}

func dashboardChurn(t *testing.T, clear, restart bool, gap time.Duration) {
	servers := masters(t, 3)
	w, proxies := proxiedWatcher(t, servers)
	c := newClient(t, servers, distlock.Config{})
	const name = "churn"
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		waitSubscribers(t, s, name, true)
	}
	time.Sleep(100 * time.Millisecond)
	proxies[1].SetLatency(5 * time.Millisecond)
	proxies[2].SetLatency(20 * time.Millisecond)
	got := make(chan []distlock.Event)
	go func() { got <- collect(events, 3*time.Second) }()
	held := 0
	for i := range 40 {
		switch i {
		case 10, 30:
			if !clear {
				break
			}
			if i == 30 {
				time.Sleep(gap)
			}
			for _, s := range servers {
				if _, err := s.Do("CONFIG", "SET", "notify-keyspace-events", ""); err != nil {
					t.Fatal(err)
				}
			}
		case 20:
			if !restart {
				break
			}
			if err := servers[2].RestartEmpty(); err != nil {
				t.Fatal(err)
			}
		}
		l, err := c.TryAcquire(t.Context(), name)
		if err != nil {
			t.Logf("cycle %d: %v", i, err)
			continue
		}
		held++
		time.Sleep(time.Duration(1+i%5) * time.Millisecond)
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	checkCycles(t, <-got, held)
}
