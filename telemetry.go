package distlock

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Observability: OpenTelemetry spans and metrics, and a structured log.
//
// Each is off unless Config gives its provider or logger, and then costs
// nothing on the hot path: no span is started without a TracerProvider,
// and every metric attribute set is built once, in New, so that a
// measurement allocates nothing of ours. The package doc lists the spans
// and instruments ("Observability").

// instrumentationName names distlock's tracer and meter.
const instrumentationName = "github.com/distlock/distlock"

// Span names.
const (
	spanAcquire = "distlock.acquire"
	spanRelease = "distlock.release"
	spanExtend  = "distlock.extend"
	spanRenew   = "distlock.renew"
	spanFence   = "distlock.fence"
)

// outcome classifies how an operation ended, for metric attributes
// (error.type) and span status.
type outcome int

const (
	outcomeOK outcome = iota
	outcomeLocked
	outcomeNoQuorum
	outcomeExpired // a majority granted, but after the validity ran out
	outcomeCanceled
	outcomeTimeout
	outcomeClosed
	outcomeLost
	outcomeOther
	numOutcomes
)

// errorTypes are the error.type attribute values, by outcome.
var errorTypes = [numOutcomes]string{
	outcomeOK:       "",
	outcomeLocked:   "locked",
	outcomeNoQuorum: "no_quorum",
	outcomeExpired:  "expired",
	outcomeCanceled: "canceled",
	outcomeTimeout:  "timeout",
	outcomeClosed:   "closed",
	outcomeLost:     "lost",
	outcomeOther:    semconv.ErrorTypeOther.Value.AsString(),
}

// classify returns err's outcome. The caller's context comes first: an
// Acquire that ran out of time while the lock was held failed because of
// its deadline.
func classify(err error) outcome {
	var qe *QuorumError
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, ErrClosed):
		return outcomeClosed
	case errors.Is(err, context.DeadlineExceeded):
		return outcomeTimeout
	case errors.Is(err, context.Canceled):
		return outcomeCanceled
	case errors.Is(err, ErrLeaseLost):
		return outcomeLost
	case errors.As(err, &qe) && qe.Expired:
		return outcomeExpired
	case errors.Is(err, ErrLocked):
		return outcomeLocked
	case errors.Is(err, ErrNoQuorum):
		return outcomeNoQuorum
	}
	return outcomeOther
}

// Acquire modes, for the distlock.acquire.mode attribute.
const (
	modeWait = iota // Acquire, Do
	modeTry         // TryAcquire
	numModes
)

var modeNames = [numModes]string{modeWait: "wait", modeTry: "try"}

// Renewal results, for distlock.lease.renewals.
const (
	renewOK    = iota // a majority renewed
	renewRetry        // too few answered; retried while validity lasts
	renewGone         // a majority reported the key gone or taken: lost
	numRenewResults
)

// telemetry holds what a Client reports through. The zero value reports
// nothing.
type telemetry struct {
	tracer trace.Tracer // nil: no spans
	log    *slog.Logger // never nil once New has run
	m      *instruments // nil: no metrics
}

// instruments are the metric instruments and their precomputed attribute
// options (a measurement with them allocates nothing of ours).
type instruments struct {
	acquireDuration metric.Float64Histogram
	attemptDuration metric.Float64Histogram
	renewals        metric.Int64Counter
	lost            metric.Int64Counter
	writebacks      metric.Int64Counter
	watchEvents     metric.Int64Counter
	resubscriptions metric.Int64Counter
	held            metric.Int64ObservableUpDownCounter
	registration    metric.Registration

	acquireOpts   [numModes][numOutcomes][]metric.RecordOption
	attemptOpts   [numOutcomes][]metric.RecordOption
	renewOpts     [numRenewResults][]metric.AddOption
	writebackOpts [numOutcomes][]metric.AddOption
	eventOpts     [EventExpired + 1][]metric.AddOption
}

// durationBuckets suit lock operations: attempts take a fraction of a
// millisecond on a LAN, waits for a held lock up to its TTL and beyond.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// newTelemetry sets up what cfg asks for. held reports how many leases the
// Client holds now, for the distlock.lease.held instrument.
func newTelemetry(cfg *Config, held func() int64) (telemetry, error) {
	t := telemetry{log: cfg.Logger}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	// A no-op provider is taken as none: a no-op tracer still allocates a
	// context per span.
	if _, noop := cfg.TracerProvider.(tracenoop.TracerProvider); cfg.TracerProvider != nil && !noop {
		t.tracer = cfg.TracerProvider.Tracer(instrumentationName)
	}
	if _, noop := cfg.MeterProvider.(metricnoop.MeterProvider); cfg.MeterProvider != nil && !noop {
		m, err := newInstruments(cfg.MeterProvider.Meter(instrumentationName), held)
		if err != nil {
			return telemetry{}, err
		}
		t.m = m
	}
	return t, nil
}

func newInstruments(meter metric.Meter, held func() int64) (*instruments, error) {
	m := &instruments{}
	var errs []error
	histogram := func(name, desc string) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		errs = append(errs, err)
		return h
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	m.acquireDuration = histogram("distlock.acquire.duration",
		"Duration of Acquire and TryAcquire calls, waiting included; count it by error.type for acquisitions and failures.")
	m.attemptDuration = histogram("distlock.acquire.attempt.duration",
		"Duration of one acquisition attempt on the masters, fencing included.")
	m.renewals = counter("distlock.lease.renewals", "{renewal}",
		"Lease renewals, background and Extend; error.type marks the failed ones.")
	m.lost = counter("distlock.lease.lost", "{lease}",
		"Leases lost: their validity ran out, or a majority of masters reported their keys gone or taken.")
	m.writebacks = counter("distlock.fence.writebacks", "{writeback}",
		"Fence counter write-backs: acquisitions whose majority did not return one counter.")
	m.watchEvents = counter("distlock.watch.events", "{event}",
		"Lock state changes seen by the Client's watches, by distlock.event.type.")
	m.resubscriptions = counter("distlock.watch.resubscriptions", "{resubscription}",
		"Watch connections subscribed again after losing their master.")
	var err error
	m.held, err = meter.Int64ObservableUpDownCounter("distlock.lease.held",
		metric.WithUnit("{lease}"),
		metric.WithDescription("Leases the Client holds now."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.registration, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(m.held, held())
		return nil
	}, m.held)
	if err != nil {
		return nil, err
	}

	errorType := func(o outcome) []attribute.KeyValue {
		if o == outcomeOK {
			return nil
		}
		return []attribute.KeyValue{semconv.ErrorTypeKey.String(errorTypes[o])}
	}
	for o := range outcome(numOutcomes) {
		for mode := range numModes {
			set := attribute.NewSet(append(errorType(o), attribute.String("distlock.acquire.mode", modeNames[mode]))...)
			m.acquireOpts[mode][o] = []metric.RecordOption{metric.WithAttributeSet(set)}
		}
		set := attribute.NewSet(errorType(o)...)
		m.attemptOpts[o] = []metric.RecordOption{metric.WithAttributeSet(set)}
		m.writebackOpts[o] = []metric.AddOption{metric.WithAttributeSet(set)}
	}
	m.renewOpts[renewOK] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet())}
	m.renewOpts[renewRetry] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(errorType(outcomeNoQuorum)...))}
	m.renewOpts[renewGone] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(errorType(outcomeLost)...))}
	for _, e := range []EventType{EventAcquired, EventReleased, EventExpired} {
		m.eventOpts[e] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("distlock.event.type", e.String())))}
	}
	return m, nil
}

// close unregisters the callbacks; the Client is closed.
func (t *telemetry) close() {
	if t.m != nil {
		t.m.registration.Unregister()
	}
}

// start starts a span named name for the lock name (none when ""), or
// returns ctx and nil when there is no tracer or the span is not recorded.
// Callers add attributes only to a span that is not nil: building them
// allocates.
func (t *telemetry) start(ctx context.Context, spanName, lock string) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, nil
	}
	ctx, span := t.tracer.Start(ctx, spanName)
	if !span.IsRecording() {
		return ctx, nil
	}
	if lock != "" {
		span.SetAttributes(attribute.String("distlock.lock.name", lock))
	}
	return ctx, span
}

// end ends span (when there is one) with err's status.
func end(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String(errorTypes[classify(err)]))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// recordMasterErrors adds each master's error to span.
func (c *Client) recordMasterErrors(span trace.Span, errs []error) {
	if span == nil {
		return
	}
	for i, err := range errs {
		if err != nil {
			span.RecordError(err, trace.WithAttributes(
				attribute.Int("distlock.master.index", i),
				attribute.String("distlock.master.address", c.nodes[i].addr)))
		}
	}
}

// acquireCall follows one Acquire or TryAcquire call, for its span and
// metrics.
type acquireCall struct {
	mode       int
	begin      time.Time
	span       trace.Span    // nil: not traced
	attempts   int           // attempts begun, counted even when telemetry is off
	inAttempts time.Duration // time spent in attempts; the rest was waiting
	handedOver bool          // the lease was handed over by one of this Client's (handoff.go)
}

// startAcquire begins following an Acquire (mode modeWait) or TryAcquire
// (modeTry) of req.
func (c *Client) startAcquire(ctx context.Context, mode int, req *request) (context.Context, acquireCall) {
	call := acquireCall{mode: mode}
	if c.tel.tracer == nil && c.tel.m == nil {
		return ctx, call // off: not even a clock read
	}
	call.begin = time.Now()
	ctx, call.span = c.tel.start(ctx, spanAcquire, req.name)
	if call.span != nil {
		call.span.SetAttributes(
			attribute.String("distlock.acquire.mode", modeNames[mode]),
			attribute.Int64("distlock.lease.ttl_ms", req.ttl.Milliseconds()),
			attribute.Int("distlock.masters", len(c.nodes)),
			attribute.Int("distlock.quorum", c.quorum))
	}
	return ctx, call
}

// endAcquire records how the call ended: l, or err.
func (c *Client) endAcquire(ctx context.Context, call *acquireCall, l *Lease, err error) {
	if c.tel.m != nil {
		c.tel.m.acquireDuration.Record(ctx, time.Since(call.begin).Seconds(), c.tel.m.acquireOpts[call.mode][classify(err)]...)
	}
	if call.span == nil {
		return
	}
	waited := time.Since(call.begin) - call.inAttempts
	call.span.SetAttributes(
		attribute.Int("distlock.acquire.attempts", call.attempts),
		attribute.Bool("distlock.acquire.handoff", call.handedOver),
		attribute.Float64("distlock.acquire.waited", waited.Seconds()))
	if l != nil {
		call.span.SetAttributes(attribute.Int64("distlock.lease.token", int64(l.token)))
	}
	end(call.span, err)
}

// attempted records one attempt that began at start: how many masters
// granted and held the lock, each master's error, and its outcome.
func (c *Client) attempted(ctx context.Context, call *acquireCall, start time.Time, granted, held int, errs []error, err error) {
	if c.tel.m == nil && call.span == nil {
		return
	}
	took := time.Since(start)
	call.inAttempts += took
	o := classify(err)
	if c.tel.m != nil {
		c.tel.m.attemptDuration.Record(ctx, took.Seconds(), c.tel.m.attemptOpts[o]...)
	}
	if call.span != nil {
		call.span.AddEvent("attempt", trace.WithAttributes(
			attribute.Int("distlock.masters.granted", granted),
			attribute.Int("distlock.masters.held", held),
			semconv.ErrorTypeKey.String(errorTypes[o])))
		c.recordMasterErrors(call.span, errs)
	}
}

// renewals counts n renewals with result (renewOK, renewRetry, renewGone).
func (c *Client) renewals(result, n int) {
	if c.tel.m != nil && n > 0 {
		c.tel.m.renewals.Add(context.Background(), int64(n), c.tel.m.renewOpts[result]...)
	}
}

// wroteBack counts a fence write-back that ended with err.
func (c *Client) wroteBack(ctx context.Context, err error) {
	if c.tel.m != nil {
		c.tel.m.writebacks.Add(ctx, 1, c.tel.m.writebackOpts[classify(err)]...)
	}
}

// leaseLost counts and logs a lease that was lost with cause.
func (c *Client) leaseLost(l *Lease, cause error) {
	if c.tel.m != nil {
		c.tel.m.lost.Add(context.Background(), 1)
	}
	c.tel.log.Warn("distlock: lease lost", "lock", l.req.name, "token", l.token, "cause", cause) // formatted only when logged
}

// watchEvent counts an event emitted to the watchers of a lock.
func (c *Client) watchEvent(t EventType) {
	if c.tel.m != nil && t >= EventAcquired && t <= EventExpired {
		c.tel.m.watchEvents.Add(context.Background(), 1, c.tel.m.eventOpts[t]...)
	}
}

// resubscribed counts and logs a watch connection subscribed again.
func (c *Client) resubscribed(n *node, names int) {
	if c.tel.m != nil {
		c.tel.m.resubscriptions.Add(context.Background(), 1)
	}
	c.tel.log.Info("distlock: watch subscribed again", "master", n.index, "address", n.addr, "locks", names)
}

// isRedisError reports whether err is an error reply from Redis.
func isRedisError(err error) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re)
}
