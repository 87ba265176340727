// Package source owns the Event type and the Source interface through which events enter Hookpost. The
// implementations live in postgres/ (a transactional outbox table) and nats/ (a JetStream stream). Nothing here
// knows about Kubernetes: ingest turns the events into WebhookDelivery objects.
package source

import (
	"context"
	"encoding/json"
	"time"
)

// Event is one event from any source.
type Event struct {
	// ID is unique per event: the outbox event_id, the Nats-Msg-Id header, else "<stream>-<sequence>". A source
	// that delivers an event twice delivers it with the same ID, so deliveries derived from it stay idempotent.
	ID string
	// Type is the event type, e.g. "order.created".
	Type string
	// TenantID is empty when the event belongs to no tenant.
	TenantID string
	// Collection is an optional grouping chosen by the producer, e.g. "orders".
	Collection string
	// OccurredAt is when the producer says the event happened.
	OccurredAt time.Time
	// Data is the event's payload: always a JSON object (the envelope's "data"), never invalid JSON.
	Data json.RawMessage
	// Source is the kind of source the event came from, as Source.Name returns it.
	Source string
	// Position is the event's place in its source, increasing in source order: the outbox row's id, the JetStream
	// stream sequence. Ordered delivery (spec.ordering) sends a key's events in this order, once the source's
	// Watermark has passed it.
	Position uint64
}

// Batch is a set of events claimed together; Ack or Nack settles it, once. The source keeps an open batch
// claimed however long the caller works on it (postgres renews a lease, NATS reports progress), so the caller
// may make slow HTTP attempts before settling it.
type Batch interface {
	// Events returns the claimed events in source order.
	Events() []Event
	// Ack marks every event done. Call it only after every matched pair (subscription, event) got a 2xx or has a
	// durable WebhookDelivery. Delivery is at least once: a source may hand an event over again (after a lost
	// claim or a failed Ack), always with the same ID, and Ack is safe even if another replica took the events.
	Ack(ctx context.Context) error
	// Nack gives the batch back for redelivery after delay, for a transient failure downstream.
	Nack(ctx context.Context, delay time.Duration, cause error) error
}

// Source yields batches of events.
type Source interface {
	// Name returns the source kind: "postgres" or "nats".
	Name() string
	// Next blocks until a batch of at least one and at most max events is available, or ctx ends. Malformed
	// input never reaches the caller: the source sets it aside itself, records why, and moves on.
	Next(ctx context.Context, max int) (Batch, error)
	// Ready reports whether the source's connection is healthy; the error says why not.
	Ready(ctx context.Context) error
	// Watermark returns a position W such that every event below it has been acknowledged (by any replica), or
	// set aside as malformed; events at or above it may still be on their way. Since an event is acknowledged only
	// once its deliveries exist, a delivery whose event's position is below W knows that every earlier event
	// already has its delivery.
	Watermark(ctx context.Context) (uint64, error)
	// Close releases the source's connections. A batch still open is given back.
	Close() error
}

// Rejection describes malformed input a source set aside, for the caller to log, count or turn into an event.
type Rejection struct {
	// Source is the source kind, as returned by Source.Name.
	Source string
	// ID identifies the input in the source: an outbox event_id or a NATS message id.
	ID string
	// Reason names what is wrong and how to fix it.
	Reason string
}

// Rereader reads again the events a source already handed over, for replays (a WebhookReplay's spec.source).
type Rereader interface {
	// Reread calls fn with each event the source took in at or after since and before until, in the order it took
	// them in, until fn returns false or none is left. Events the source set aside as malformed are not among them.
	Reread(ctx context.Context, since, until time.Time, fn func(Event) bool) error
}
