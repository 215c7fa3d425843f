// Command otel shows the OpenTelemetry spans and metrics distlock reports:
// two Clients (as two processes would be) take turns on one lock, a
// TryAcquire finds it held, and the program prints each span as it ends and
// the metrics at the end, one line each:
//
//	go run ./examples/otel
//	go run ./examples/otel -nodes redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0,redis://10.0.0.3:6379/0
//
// When -nodes is not given, the DISTLOCK_NODES environment variable is
// used, in the same comma-separated form; when that is empty too, the
// default node redis://127.0.0.1:6379/0.
//
// distlock uses only the OpenTelemetry API; the program picks the SDK and
// the exporters. Here a small exporter prints spans, and a manual reader
// collects the metrics; a real program would send both to a collector
// (otlptracegrpc, otlpmetricgrpc). Expected output (durations, tokens,
// attempts and order vary):
//
//	span distlock.acquire 3.6ms lock=examples/otel mode=wait attempts=1 token=64
//	span distlock.release 1.4ms lock=examples/otel token=64
//	span distlock.fence 1.4ms lock=examples/otel
//	span distlock.acquire 38.1ms lock=examples/otel mode=wait attempts=4 token=193
//	...
//	span distlock.acquire 0.5ms lock=examples/otel mode=try attempts=1 error=locked
//	span distlock.release 0.4ms lock=examples/otel token=832
//	metric distlock.acquire.duration{distlock.acquire.mode=try,error.type=locked} count=1 sum=0.0005s
//	metric distlock.acquire.duration{distlock.acquire.mode=wait} count=7 sum=0.1450s
//	metric distlock.acquire.attempt.duration count=7 sum=0.0219s
//	metric distlock.acquire.attempt.duration{error.type=locked} count=19 sum=0.0296s
//	metric distlock.fence.writebacks 3
//	metric distlock.watch.events{distlock.event.type=acquired} 3
//	metric distlock.watch.events{distlock.event.type=released} 5
//	metric distlock.lease.held 0
//
// A distlock.fence span is a fencing write-back inside an acquire: under
// contention the masters' counters drift apart (a master that refused one
// acquire did not count it), and the next acquire writes the largest back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/distlock/distlock"
)

// lockName is the lock the two Clients share.
const lockName = "examples/otel"

func main() {
	nodes := flag.String("nodes", os.Getenv("DISTLOCK_NODES"),
		"comma-separated Redis masters, e.g. redis://host:6379/0 (default: $DISTLOCK_NODES, else "+distlock.DefaultNode+")")
	rounds := flag.Int("rounds", 3, "how many times each Client takes the lock")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, splitNodes(*nodes), *rounds, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "otel:", err)
		os.Exit(1)
	}
}

// run makes two Clients take the lock rounds times each, then prints the
// metrics. Spans are printed to out as they end.
func run(ctx context.Context, nodes []string, rounds int, out io.Writer) error {
	w := &lineWriter{w: out}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spanPrinter{w}))
	defer tp.Shutdown(context.Background())
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	cfg := distlock.Config{
		Nodes:          nodes,
		TracerProvider: tp,
		MeterProvider:  mp,
		// Warnings (a master not answering, a lease lost) go to stderr.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}

	var clients []*distlock.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range 2 {
		c, err := distlock.New(cfg)
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}

	// Each Client takes the lock in turn and holds it for 20ms; the other
	// waits, woken by the release.
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, c := range clients {
		wg.Go(func() {
			for range rounds {
				errs[i] = c.Do(ctx, lockName, func(ctx context.Context, l *distlock.Lease) error {
					select {
					case <-time.After(20 * time.Millisecond):
						return nil
					case <-ctx.Done(): // the lease was lost, or the program interrupted
						return ctx.Err()
					}
				})
				if errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// One more: TryAcquire while the other Client holds the lock fails
	// with ErrLocked, which the metrics count as error.type=locked.
	l, err := clients[0].Acquire(ctx, lockName)
	if err != nil {
		return err
	}
	if _, err := clients[1].TryAcquire(ctx, lockName); !errors.Is(err, distlock.ErrLocked) {
		l.Release(ctx)
		return fmt.Errorf("TryAcquire of a held lock: got %v, want ErrLocked", err)
	}
	if err := l.Release(ctx); err != nil {
		return err
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return err
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			printMetric(w, m)
		}
	}
	return nil
}

// spanPrinter is a span exporter that prints one line per span.
type spanPrinter struct{ w *lineWriter }

func (p spanPrinter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	for _, s := range spans {
		var b strings.Builder
		fmt.Fprintf(&b, "span %s %.1fms", s.Name(), float64(s.EndTime().Sub(s.StartTime()).Microseconds())/1000)
		for _, kv := range s.Attributes() {
			if key, ok := shortKeys[kv.Key]; ok {
				fmt.Fprintf(&b, " %s=%s", key, kv.Value.String())
			}
		}
		p.w.println(b.String())
	}
	return nil
}

func (spanPrinter) Shutdown(context.Context) error { return nil }

// shortKeys are the span attributes printed, by the name they print as.
var shortKeys = map[attribute.Key]string{
	"distlock.lock.name":        "lock",
	"distlock.acquire.mode":     "mode",
	"distlock.acquire.attempts": "attempts",
	"distlock.lease.token":      "token",
	"distlock.leases":           "leases",
	"error.type":                "error",
}

// printMetric prints one line per data point of m.
func printMetric(w *lineWriter, m metricdata.Metrics) {
	switch d := m.Data.(type) {
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			w.println(fmt.Sprintf("metric %s%s count=%d sum=%.4f%s", m.Name, labels(p.Attributes), p.Count, p.Sum, m.Unit))
		}
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			w.println(fmt.Sprintf("metric %s%s %d", m.Name, labels(p.Attributes), p.Value))
		}
	}
}

// labels renders attributes as {k=v,...}, sorted; nothing when empty.
func labels(set attribute.Set) string {
	if set.Len() == 0 {
		return ""
	}
	var kvs []string
	for _, kv := range set.ToSlice() {
		kvs = append(kvs, string(kv.Key)+"="+kv.Value.String())
	}
	sort.Strings(kvs)
	return "{" + strings.Join(kvs, ",") + "}"
}

// lineWriter serializes lines from concurrent spans.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) println(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, s)
}

// splitNodes turns "a, b,c" into ["a" "b" "c"], and "" into nil (which
// distlock.Config reads as the default node).
func splitNodes(s string) []string {
	var nodes []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			nodes = append(nodes, n)
		}
	}
	return nodes
}
