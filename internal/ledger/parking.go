package ledger

import (
	"context"
	"time"
)

// Parked is the delivery of one event to one subscription, set aside next to the ledger instead of becoming a
// WebhookDelivery object now: because the subscription (or the cluster) had reached its cap of unfinished
// objects, or because its endpoint cannot take deliveries (Reason). It holds everything needed to make the object
// later; Seq is its place in the order of arrival, given by the Parking that stored it.
type Parked struct {
	Seq          int64
	Subscription SubscriptionKey
	Reason       ParkReason
	EventID      string
	EventType    string
	TenantID     string
	Collection   string
	OccurredAt   time.Time
	Data         []byte // the event's data as received (JSON), nil when it had none
	// FirstAttempt is the failed first attempt already made, encoded as the object's first-attempt annotation
	// holds it; "" when none was made.
	FirstAttempt string
}

// ParkReason says why a delivery was parked.
type ParkReason string

const (
	// ParkedPastCap: its subscription or the cluster was at its cap of unfinished objects. While a subscription
	// has such rows, its new matches are parked behind them, so they become objects in order of arrival.
	ParkedPastCap ParkReason = "cap"
	// ParkedForEndpoint: its endpoint's circuit was open, its attempts hung, or its first attempt failed. New
	// matches are not held behind such rows: once the endpoint takes deliveries again they go at once, while the
	// rows drain beside them.
	ParkedForEndpoint ParkReason = "endpoint"
)

// ParkedCount is how many deliveries a subscription has parked, and how many of them past a cap.
type ParkedCount struct {
	All, PastCap int64
}

// SubscriptionKey names a subscription; UID tells one subscription from another made later under the same name,
// so deliveries parked for a deleted subscription never reach its successor.
type SubscriptionKey struct {
	Namespace, Name, UID string
}

// Parking holds parked deliveries until there is room for their objects. Park is idempotent per (subscription,
// event): an event handed over twice is parked once.
type Parking interface {
	Park(ctx context.Context, p Parked) error
	// Oldest returns up to limit of sub's parked deliveries, in order of arrival.
	Oldest(ctx context.Context, sub SubscriptionKey, limit int) ([]Parked, error)
	// Remove deletes parked deliveries, by Seq, once their objects exist.
	Remove(ctx context.Context, seqs ...int64) error
	// RemoveSubscription deletes every delivery parked for sub (which is gone) and returns how many.
	RemoveSubscription(ctx context.Context, sub SubscriptionKey) (int64, error)
	// Counts returns how many deliveries are parked per subscription; subscriptions with none are absent.
	Counts(ctx context.Context) (map[SubscriptionKey]ParkedCount, error)
}
