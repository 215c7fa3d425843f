package main

import (
	"bytes"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// record collects what run reports through its hooks.
type record struct {
	mu      sync.Mutex
	items   map[int][]time.Time // worker -> start of each item
	stops   map[int]stopInfo    // worker -> why and when it stopped
	endErr  error               // the lease's Err once Done closed
	endAt   time.Time           // read just after Done was seen closed
	ended   bool
	stopped chan int // one send per worker that stops
}

type stopInfo struct {
	err error
	at  time.Time
}

func newRecord(workers int) *record {
	return &record{items: map[int][]time.Time{}, stops: map[int]stopInfo{}, stopped: make(chan int, workers)}
}

func (r *record) hooks(o options) options {
	o.OnItem = func(w, _ int, at time.Time) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.items[w] = append(r.items[w], at)
	}
	o.OnStop = func(w int, err error, at time.Time) {
		r.mu.Lock()
		r.stops[w] = stopInfo{err, at}
		r.mu.Unlock()
		r.stopped <- w
	}
	o.OnLeaseEnd = func(err error, at time.Time) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.endErr, r.endAt, r.ended = err, at, true
	}
	return o
}

// checkNoItemAfterEnd fails the test if a worker started an item after the
// lease ended. Each item's time was read before the worker found Err nil,
// so it precedes the lease's end, which precedes endAt.
func (r *record) checkNoItemAfterEnd(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ended {
		t.Fatal("OnLeaseEnd was never called")
	}
	for w, starts := range r.items {
		for i, at := range starts {
			if at.After(r.endAt) {
				t.Errorf("worker %d started item %d %v after the lease ended", w, i+1, at.Sub(r.endAt))
			}
		}
		if s, ok := r.stops[w]; ok && len(starts) > 0 && starts[len(starts)-1].After(s.at) {
			t.Errorf("worker %d started an item after it stopped", w)
		}
	}
}

// TestRelease runs the program normally: the workers work until the lock
// is released, then all stop, and no lock key is left on any master.
func TestRelease(t *testing.T) {
	masters := redistest.StartN(t, 3, redistest.Options{})
	opts := options{TTL: 2 * time.Second, Hold: 600 * time.Millisecond, Workers: 3, Interval: 50 * time.Millisecond}
	rec := newRecord(opts.Workers)

	var out bytes.Buffer
	if err := run(t.Context(), redistest.URLs(masters), &out, rec.hooks(opts)); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	text := out.String()
	t.Logf("output:\n%s", text)

	if !regexp.MustCompile(`(?m)^acquired examples/worker with fencing token [1-9]\d*, TTL 2s$`).MatchString(text) {
		t.Errorf("no line \"acquired examples/worker with fencing token N, TTL 2s\"")
	}
	for w := 1; w <= opts.Workers; w++ {
		line := regexp.MustCompile(`(?m)^worker ` + strconv.Itoa(w) + `: lease released \(.*\), stopping$`)
		if !line.MatchString(text) {
			t.Errorf("worker %d did not print that it stopped on release", w)
		}
		if !strings.Contains(text, "worker "+strconv.Itoa(w)+": item 1 done\n") {
			t.Errorf("worker %d processed no item", w)
		}
		s, ok := rec.stops[w]
		if !ok || !errors.Is(s.err, distlock.ErrReleased) {
			t.Errorf("worker %d stopped with %v, want ErrReleased", w, s.err)
		}
	}
	if !regexp.MustCompile(`(?m)^summary: 3 workers processed [1-9]\d* items \(.*\); lease released$`).MatchString(text) {
		t.Errorf("no summary line ending in \"lease released\"")
	}
	if !errors.Is(rec.endErr, distlock.ErrReleased) {
		t.Errorf("lease ended with %v, want ErrReleased", rec.endErr)
	}
	rec.checkNoItemAfterEnd(t)

	// Release deletes the key on every master; the slowest master's delete
	// may still be in flight when Release returns with a majority.
	key := distlock.DefaultKeyPrefix + lockName
	for _, s := range masters {
		deadline := time.Now().Add(2 * time.Second)
		for {
			n, err := s.Do("EXISTS", key)
			if err != nil {
				t.Fatalf("EXISTS %s on %s: %v", key, s.Addr(), err)
			}
			if n == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("key %s still on %s after release", key, s.Addr())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestLeaseLost pauses 2 of the 3 masters while the workers run: the lease
// cannot be renewed on a majority, so it is lost within its TTL, and every
// worker must stop with ErrLeaseLost before the TTL has passed since the
// pause, without starting another item.
func TestLeaseLost(t *testing.T) {
	masters := redistest.StartN(t, 3, redistest.Options{})
	t.Cleanup(func() {
		for _, m := range masters {
			m.Resume()
		}
	})
	const ttl = time.Second
	opts := options{TTL: ttl, Hold: time.Minute, Workers: 3, Interval: 50 * time.Millisecond, Work: 10 * time.Millisecond}
	rec := newRecord(opts.Workers)
	acquired := make(chan struct{})
	opts = rec.hooks(opts)
	opts.OnAcquired = func(*distlock.Lease) { close(acquired) }

	var out bytes.Buffer
	errc := make(chan error, 1)
	go func() { errc <- run(t.Context(), redistest.URLs(masters), &out, opts) }()

	select {
	case <-acquired:
	case err := <-errc:
		t.Fatalf("run returned before acquiring: %v\noutput:\n%s", err, out.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not acquired within 10s")
	}
	// Let the workers run through at least one renewal (TTL/3).
	time.Sleep(ttl/2 + ttl/10)

	for _, m := range masters[:2] {
		if err := m.Pause(); err != nil {
			t.Fatalf("Pause %s: %v", m.Addr(), err)
		}
	}
	// The majority is out of reach from here on: a renewal that started
	// before now can still have reached two masters, but none after.
	paused := time.Now()

	for range opts.Workers {
		select {
		case <-rec.stopped:
		case <-time.After(3 * ttl):
			for _, m := range masters {
				m.Resume()
			}
			t.Fatalf("not every worker stopped within %v of the pause", 3*ttl)
		}
	}
	// Resume before run returns: its Client's Close should not have to
	// wait for frozen masters.
	for _, m := range masters {
		m.Resume()
	}
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s after the workers stopped")
	}
	text := out.String()
	t.Logf("output:\n%s", text)
	if !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("run returned %v, want an error wrapping ErrLeaseLost", err)
	}

	rec.mu.Lock()
	for w := 1; w <= opts.Workers; w++ {
		s, ok := rec.stops[w]
		if !ok {
			t.Errorf("worker %d never stopped", w)
			continue
		}
		if !errors.Is(s.err, distlock.ErrLeaseLost) {
			t.Errorf("worker %d stopped with %v, want ErrLeaseLost", w, s.err)
		}
		// The lease's validity counts from the start of the last renewal
		// that reached a majority, which was before the pause, less drift:
		// the workers must have stopped before the TTL ran out since then.
		if d := s.at.Sub(paused); d >= ttl {
			t.Errorf("worker %d stopped %v after the pause, want < TTL %v", w, d, ttl)
		} else {
			t.Logf("worker %d stopped %v after the pause", w, d)
		}
		if len(rec.items[w]) == 0 {
			t.Errorf("worker %d processed no item before the pause", w)
		}
		if !regexp.MustCompile(`(?m)^worker ` + strconv.Itoa(w) + `: lease lost \(.*distlock: lease lost.*\), stopping$`).MatchString(text) {
			t.Errorf("worker %d did not print that it stopped on loss", w)
		}
	}
	rec.mu.Unlock()
	if !errors.Is(rec.endErr, distlock.ErrLeaseLost) {
		t.Errorf("lease ended with %v, want ErrLeaseLost", rec.endErr)
	}
	rec.checkNoItemAfterEnd(t)
	if !regexp.MustCompile(`(?m)^summary: 3 workers processed [1-9]\d* items \(.*\); lease lost$`).MatchString(text) {
		t.Errorf("no summary line ending in \"lease lost\"")
	}
}

func TestSplitNodes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"redis://a:6379/0", []string{"redis://a:6379/0"}},
		{"a:1, b:2 ,,c:3", []string{"a:1", "b:2", "c:3"}},
	} {
		if got := splitNodes(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitNodes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
