// Package ledger owns the delivery ledger: an append-only record of every HTTP attempt of every delivery, kept
// outside Kubernetes so history survives the WebhookDelivery objects that subscriptions' history limits prune,
// and so fast-path attempts that never had an object are recorded too. Callers hand attempts to a Recorder,
// which must never hold them up; postgres/ implements it with a table written in batches off the hot path. Next to
// it, Parking holds the deliveries set aside past the caps on unfinished WebhookDeliveries, until there is room.
package ledger

import (
	"context"
	"time"
)

// Attempt is one HTTP attempt of one delivery, as the ledger keeps it.
type Attempt struct {
	DeliveryName string // the WebhookDelivery name (derived from subscription and event id), also for fast-path attempts that have no object
	Namespace    string // the subscription's namespace
	Subscription string // the subscription's name
	EventID      string
	EventType    string
	TenantID     string
	Collection   string
	Number       int       // attempt number, 1-based
	Time         time.Time // when the attempt started
	Duration     time.Duration
	StatusCode   int       // 0 when no response
	ErrorClass   string    // the outcome class: "Succeeded", "Retry", "Permanent", "Gone", "TLS", ... ("" unknown)
	Error        string    // what went wrong, "" on success
	Response     []byte    // the first KiB of the response body
	NextRetry    time.Time // zero when no retry follows
	Outcome      Outcome   // what the delivery became after this attempt
	Test         bool
	Replay       bool
}

// Outcome is what a delivery became after an attempt.
type Outcome string

const (
	// OutcomeSucceeded: the receiver accepted the event; no attempt follows.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeRetrying: the attempt failed and another is scheduled (Attempt.NextRetry).
	OutcomeRetrying Outcome = "retrying"
	// OutcomeFailed: the attempt failed and none follows, unless the delivery is replayed.
	OutcomeFailed Outcome = "failed"
	// OutcomeRefused: the API server refused the delivery's WebhookDelivery (an admission policy or webhook, an
	// invalid object, a full quota, a namespace being deleted), so the event is not delivered to the subscription
	// and nothing retries it. Number is 0 when no HTTP attempt was made, 1 for a first attempt that failed.
	OutcomeRefused Outcome = "refused"
)

// Recorder appends attempts. Record never blocks on the database.
type Recorder interface{ Record(Attempt) }

// Flusher is a Recorder that writes what it holds on demand. A caller flushes before it makes an attempt's
// outcome durable elsewhere (a WebhookDelivery status, an acknowledged source event), so the ledger never lacks
// an attempt that the rest of the system remembers, even across a crash.
type Flusher interface {
	Recorder
	Flush(ctx context.Context) error
}

// Flush writes what r holds when it is a Flusher; a Recorder that keeps nothing has nothing to write.
func Flush(ctx context.Context, r Recorder) error {
	if f, ok := r.(Flusher); ok {
		return f.Flush(ctx)
	}
	return nil
}

// Discard is the Recorder used when no ledger is configured.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(Attempt) {}
