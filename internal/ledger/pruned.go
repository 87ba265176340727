package ledger

import (
	"context"
	"time"
)

// Pruned is a finished delivery whose object was deleted beyond its subscription's history limits, with the event
// it carried: what a replay needs to make the delivery again (the attempts stay in the ledger table). It is kept
// when the object is pruned, not when the event is delivered, so the fast path (a 2xx first attempt that never had
// an object) writes nothing more than its attempt row.
type Pruned struct {
	Namespace    string
	Subscription string
	DeliveryName string
	EventID      string
	EventType    string
	TenantID     string
	Collection   string
	OccurredAt   time.Time
	Data         []byte // the event's data (JSON), nil when it had none
	// Phase and Reason are how the delivery ended: its phase (Succeeded or Failed) and its Delivered condition's
	// reason, so a replay selects pruned deliveries as it selects objects.
	Phase, Reason string
	// Created is when the delivery's object was created: a replay selects only deliveries that existed before it.
	Created time.Time
}

// PrunedQuery selects pruned deliveries of one namespace. Zero fields select everything.
type PrunedQuery struct {
	Namespace    string
	Subscription string
	// CreatedBefore selects deliveries whose object was created at or before it.
	CreatedBefore time.Time
	// From and To bound the event time: OccurredAt at or after From, before To.
	From, To time.Time
	// EventTypes, Tenants, Phases and Reasons select deliveries with one of the values given.
	EventTypes, Tenants, Phases, Reasons []string
	// Limit is the most returned, oldest events first.
	Limit int
}

// PrunedStore keeps pruned deliveries next to the ledger until its retention removes them.
type PrunedStore interface {
	// KeepPruned stores ds (a delivery pruned again replaces what was kept of it) before their objects are deleted;
	// it returns once they are durable.
	KeepPruned(ctx context.Context, ds []Pruned) error
	// Pruned returns the pruned deliveries q selects, oldest event first.
	Pruned(ctx context.Context, q PrunedQuery) ([]Pruned, error)
}
