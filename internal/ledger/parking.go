package ledger

import (
	"context"
	"time"
)

// Parked is the delivery of one event to one subscription, set aside next to the ledger because the subscription
// (or the cluster) had reached its cap of unfinished WebhookDelivery objects. It holds everything needed to make
// the object later; Seq is its place in the order of arrival, given by the Parking that stored it.
type Parked struct {
	Seq          int64
	Subscription SubscriptionKey
	EventID      string
	EventType    string
	TenantID     string
	Collection   string
	OccurredAt   time.Time
	Data         []byte // the event's data as received (JSON), nil when it had none
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
	Counts(ctx context.Context) (map[SubscriptionKey]int64, error)
}
