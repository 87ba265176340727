package nats

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookpost/hookpost/internal/source"
)

// Publish publishes ev to prefix + ev.Type with the headers the source reads: Nats-Msg-Id = ev.ID (so the
// stream's dedup window drops a second publish of the same event), tenant, collection and, when set, the
// occurred-at time. It refuses an event the source would reject. An empty prefix means DefaultSubjectPrefix.
func Publish(ctx context.Context, js jetstream.JetStream, prefix string, ev source.Event) error {
	if prefix == "" {
		prefix = DefaultSubjectPrefix
	}
	if reason := source.ValidateEvent(ev, 0); reason != "" {
		return fmt.Errorf("refuse to publish event %q: %s", ev.ID, reason)
	}
	msg := nats.NewMsg(prefix + ev.Type)
	msg.Data = ev.Data
	if ev.ID != "" {
		msg.Header.Set(HeaderMsgID, ev.ID)
	}
	if ev.TenantID != "" {
		msg.Header.Set(HeaderTenantID, ev.TenantID)
	}
	if ev.Collection != "" {
		msg.Header.Set(HeaderCollection, ev.Collection)
	}
	if !ev.OccurredAt.IsZero() {
		msg.Header.Set(HeaderOccurredAt, ev.OccurredAt.UTC().Format(time.RFC3339Nano))
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish event %q to %s: %w", ev.ID, msg.Subject, err)
	}
	return nil
}
