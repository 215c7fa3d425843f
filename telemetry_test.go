package distlock_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// observed is a Client whose spans, metrics and logs a test can read.
type observed struct {
	*distlock.Client
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	logs   *syncBuffer
}

func newObserved(t *testing.T, servers []*redistest.Server, cfg distlock.Config) *observed {
	t.Helper()
	o := &observed{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), logs: &syncBuffer{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	t.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	cfg.TracerProvider, cfg.MeterProvider = tp, mp
	cfg.Logger = slog.New(slog.NewTextHandler(o.logs, nil))
	o.Client = newClient(t, servers, cfg)
	return o
}

// spansNamed returns the ended spans called name.
func (o *observed) spansNamed(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// metric returns the instrument called name from a fresh collection.
func (o *observed) metric(t *testing.T, name string) (metricdata.Metrics, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/distlock/distlock" {
			t.Errorf("instrumentation scope %q; want github.com/distlock/distlock", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// count returns how many measurements the histogram or counter name has
// with exactly the attributes want ("" values mean: attribute absent).
func (o *observed) count(t *testing.T, name string, want map[string]string) int64 {
	t.Helper()
	m, ok := o.metric(t, name)
	if !ok {
		return 0
	}
	match := func(set attribute.Set) bool {
		for k, v := range want {
			got, has := set.Value(attribute.Key(k))
			if v == "" && has || v != "" && (!has || got.AsString() != v) {
				return false
			}
		}
		return true
	}
	var n int64
	switch d := m.Data.(type) {
	case metricdata.Histogram[float64]:
		if m.Unit != "s" {
			t.Errorf("%s: unit %q; want s", name, m.Unit)
		}
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				n += int64(p.Count)
			}
		}
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				n += p.Value
			}
		}
	default:
		t.Fatalf("%s: unexpected data %T", name, m.Data)
	}
	return n
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// An uncontended acquire and release: one span each, with the lock, the
// token and one attempt; the acquire metrics count a success; the leases
// held gauge follows the lease.
func TestTelemetryAcquire(t *testing.T) {
	servers := masters(t, 3)
	c := newObserved(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := c.Acquire(ctx, "traced")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.count(t, "distlock.lease.held", nil); got != 1 {
		t.Errorf("distlock.lease.held while holding: %d; want 1", got)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.count(t, "distlock.lease.held", nil); got != 0 {
		t.Errorf("distlock.lease.held after Release: %d; want 0", got)
	}

	acq := c.spansNamed("distlock.acquire")
	if len(acq) != 1 {
		t.Fatalf("%d distlock.acquire spans; want 1", len(acq))
	}
	s := acq[0]
	for key, want := range map[string]any{
		"distlock.lock.name":        "traced",
		"distlock.acquire.mode":     "wait",
		"distlock.acquire.attempts": int64(1),
		"distlock.lease.token":      int64(l.Token()),
		"distlock.masters":          int64(3),
		"distlock.quorum":           int64(2),
	} {
		if v, ok := attr(s, key); !ok || v.AsInterface() != want {
			t.Errorf("acquire span %s = %v; want %v", key, v.AsInterface(), want)
		}
	}
	if _, ok := attr(s, "distlock.acquire.waited"); !ok {
		t.Error("acquire span has no distlock.acquire.waited")
	}
	if s.Status().Code.String() != "Unset" {
		t.Errorf("acquire span status %v; want Unset", s.Status())
	}
	var attempts int
	for _, e := range s.Events() {
		if e.Name == "attempt" {
			attempts++
			for _, kv := range e.Attributes {
				if kv.Key == "distlock.masters.granted" && kv.Value.AsInt64() < 2 {
					t.Errorf("attempt event: %d masters granted; want at least 2", kv.Value.AsInt64())
				}
			}
		}
	}
	if attempts != 1 {
		t.Errorf("%d attempt events; want 1", attempts)
	}
	rel := c.spansNamed("distlock.release")
	if len(rel) != 1 {
		t.Fatalf("%d distlock.release spans; want 1", len(rel))
	}
	if v, _ := attr(rel[0], "distlock.lease.token"); v.AsInt64() != int64(l.Token()) {
		t.Errorf("release span token %v; want %d", v.AsInterface(), l.Token())
	}

	if n := c.count(t, "distlock.acquire.duration", map[string]string{"distlock.acquire.mode": "wait", "error.type": ""}); n != 1 {
		t.Errorf("distlock.acquire.duration{mode=wait, no error}: %d; want 1", n)
	}
	if n := c.count(t, "distlock.acquire.attempt.duration", map[string]string{"error.type": ""}); n != 1 {
		t.Errorf("distlock.acquire.attempt.duration{no error}: %d; want 1", n)
	}
	if c.logs.String() != "" {
		t.Errorf("logged with every master up:\n%s", c.logs)
	}
}

// A contended lock: TryAcquire fails as locked, an Acquire times out, and
// an Acquire that waits for the release succeeds after several attempts;
// the metrics count each by its error.type.
func TestTelemetryContended(t *testing.T) {
	servers := masters(t, 3)
	holder := newClient(t, servers, distlock.Config{})
	c := newObserved(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := holder.Acquire(ctx, "contended")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryAcquire(ctx, "contended"); !errors.Is(err, distlock.ErrLocked) {
		t.Fatalf("TryAcquire: %v; want ErrLocked", err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Acquire(short, "contended"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with a short deadline: %v; want DeadlineExceeded", err)
	}
	time.AfterFunc(100*time.Millisecond, func() { l.Release(context.Background()) })
	l2, err := c.Acquire(ctx, "contended")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Release(ctx)

	for _, tc := range []struct {
		mode, errorType string
	}{{"try", "locked"}, {"wait", "timeout"}, {"wait", ""}} {
		if n := c.count(t, "distlock.acquire.duration", map[string]string{"distlock.acquire.mode": tc.mode, "error.type": tc.errorType}); n != 1 {
			t.Errorf("distlock.acquire.duration{mode=%s, error.type=%q}: %d; want 1", tc.mode, tc.errorType, n)
		}
	}
	if n := c.count(t, "distlock.acquire.attempt.duration", map[string]string{"error.type": "locked"}); n < 2 {
		t.Errorf("distlock.acquire.attempt.duration{error.type=locked}: %d; want at least 2", n)
	}
	var won sdktrace.ReadOnlySpan
	for _, s := range c.spansNamed("distlock.acquire") {
		if s.Status().Code.String() == "Error" {
			if v, _ := attr(s, "error.type"); v.AsString() != "locked" && v.AsString() != "timeout" {
				t.Errorf("failed acquire span error.type %q; want locked or timeout", v.AsString())
			}
			continue
		}
		won = s
	}
	if won == nil {
		t.Fatal("no successful acquire span")
	}
	if v, _ := attr(won, "distlock.acquire.attempts"); v.AsInt64() < 2 {
		t.Errorf("the waiting acquire made %d attempts; want at least 2", v.AsInt64())
	}
	if v, _ := attr(won, "distlock.acquire.waited"); v.AsFloat64() <= 0 {
		t.Errorf("the waiting acquire waited %vs; want > 0", v.AsFloat64())
	}
}

// A lease lost to paused masters: renewal failures and the loss are
// counted, and the log says which masters stopped answering and which
// lease was lost.
func TestTelemetryLostLease(t *testing.T) {
	servers := masters(t, 3)
	c := newObserved(t, servers, distlock.Config{})
	l, err := c.Acquire(ctxTimeout(t, 10*time.Second), "lost", distlock.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	servers[0].Pause()
	servers[1].Pause()
	t.Cleanup(func() { servers[0].Resume(); servers[1].Resume() })
	select {
	case <-l.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("lease not lost 3s after a majority was paused")
	}
	if n := c.count(t, "distlock.lease.lost", nil); n != 1 {
		t.Errorf("distlock.lease.lost: %d; want 1", n)
	}
	if n := c.count(t, "distlock.lease.renewals", map[string]string{"error.type": "no_quorum"}); n < 1 {
		t.Errorf("distlock.lease.renewals{error.type=no_quorum}: %d; want at least 1", n)
	}
	if len(c.spansNamed("distlock.renew")) == 0 {
		t.Error("no distlock.renew span")
	}
	logs := c.logs.String()
	for _, want := range []string{
		`msg="distlock: lease lost" lock=lost`,
		`msg="distlock: master not answering" master=0 address=` + servers[0].URL(),
		`msg="distlock: master not answering" master=1 address=` + servers[1].URL(),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	servers[0].Resume()
	servers[1].Resume()
	// The next commands find them answering again.
	if _, err := c.Acquire(ctxTimeout(t, 10*time.Second), "after"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the log to say master 0 answers again", func() bool {
		return strings.Contains(c.logs.String(), `msg="distlock: master answering again" master=0`)
	})
}

// Counters driven apart make an acquire write its counter back: a fence
// span under the acquire's, and the write-back counted.
func TestTelemetryFenceWriteBack(t *testing.T) {
	servers := masters(t, 3)
	c := newObserved(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := c.Acquire(ctx, "fenced")
	if err != nil {
		t.Fatal(err)
	}
	l.Release(ctx)
	noLockKeys(t, servers) // every master ran the acquire (a straggler's comes late) and the delete
	// Apart on every pair of masters, whichever majority answers first.
	for i, s := range servers[:2] {
		keys, err := s.Do("KEYS", "distlock:fence:{*}")
		if err != nil || keys == "" {
			t.Fatalf("no fence counter on master %d: %q %v", i, keys, err)
		}
		if _, err := s.Do("SET", keys, strconv.Itoa(1000*(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	l, err = c.Acquire(ctx, "fenced")
	if err != nil {
		t.Fatal(err)
	}
	l.Release(ctx)
	if n := c.count(t, "distlock.fence.writebacks", map[string]string{"error.type": ""}); n != 1 {
		t.Errorf("distlock.fence.writebacks: %d; want 1", n)
	}
	fence := c.spansNamed("distlock.fence")
	if len(fence) != 1 {
		t.Fatalf("%d distlock.fence spans; want 1", len(fence))
	}
	var parent sdktrace.ReadOnlySpan
	for _, s := range c.spansNamed("distlock.acquire") {
		if s.SpanContext().SpanID() == fence[0].Parent().SpanID() {
			parent = s
		}
	}
	if parent == nil {
		t.Error("the fence span's parent is not an acquire span")
	}
	// The largest counter of the majority that answered first.
	if v, _ := attr(fence[0], "distlock.fence.counter"); v.AsInt64() != 1001 && v.AsInt64() != 2001 {
		t.Errorf("fence span counter %d; want 1001 or 2001", v.AsInt64())
	}
}

// Watch events and a watch connection's resubscription are counted.
func TestTelemetryWatch(t *testing.T) {
	servers := masters(t, 3)
	c := newObserved(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 20*time.Second)
	events, err := c.Watch(ctx, "watched")
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Acquire(ctx, "watched")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
		t.Fatalf("event %v; want acquired", ev.Type)
	}
	l.Release(ctx)
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
		t.Fatalf("event %v; want released", ev.Type)
	}
	// Every event the hub emits reaches this, its only watcher (the
	// buffer is far from full): the counts must agree. (An attempt that
	// fails on a loaded machine can add an acquired-released pair.)
	seen := map[string]int64{"acquired": 1, "released": 1}
	for quiet := false; !quiet; {
		select {
		case ev := <-events:
			seen[ev.Type.String()]++
		case <-time.After(200 * time.Millisecond):
			quiet = true
		}
	}
	for typ, want := range seen {
		if n := c.count(t, "distlock.watch.events", map[string]string{"distlock.event.type": typ}); n != want {
			t.Errorf("distlock.watch.events{type=%s}: %d; want %d, as received", typ, n, want)
		}
	}
	if _, err := servers[2].Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a resubscription counted", func() bool {
		return c.count(t, "distlock.watch.resubscriptions", nil) >= 1
	})
	if !strings.Contains(c.logs.String(), `msg="distlock: watch connection lost; subscribing again" master=2`) {
		t.Errorf("log lacks the lost watch connection:\n%s", c.logs)
	}
}
