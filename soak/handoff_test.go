package soak

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// handoffCounter is a TracerProvider that records nothing but how many
// acquires a local handoff completed: the attribute
// distlock.acquire.handoff of the Client's acquire spans. It shows that
// the soak's Releases do hand the lock over to a goroutine of the same
// Client, not only to other Clients.
type handoffCounter struct {
	noop.TracerProvider
	n atomic.Int64
}

func (h *handoffCounter) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return handoffTracer{h: h}
}

type handoffTracer struct {
	noop.Tracer
	h *handoffCounter
}

// Start records acquire spans only; every other span is a no-op, which
// the Client then skips.
func (t handoffTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if name != "distlock.acquire" {
		return t.Tracer.Start(ctx, name, opts...)
	}
	s := &handoffSpan{h: t.h}
	return trace.ContextWithSpan(ctx, s), s
}

type handoffSpan struct {
	noop.Span
	h *handoffCounter
}

func (s *handoffSpan) IsRecording() bool { return true }

func (s *handoffSpan) SetAttributes(kv ...attribute.KeyValue) {
	for _, a := range kv {
		if a.Key == "distlock.acquire.handoff" && a.Value.AsBool() {
			// Set once per acquire, when it ends.
			s.h.n.Add(1)
		}
	}
}
