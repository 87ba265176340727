package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/test/harness"
)

// TestNATSRestartedMidRun restarts the NATS server while the operator consumes and a producer keeps publishing:
// pulls and acks lost to the restart make the server hand messages over again (at once, or after AckWait),
// producers retry with the same Nats-Msg-Id, and still every event ends as exactly one delivery per matching
// subscription.
func TestNATSRestartedMidRun(t *testing.T) {
	const events = 2000
	tb := newTestbed(t)
	srv := harness.StartNATS(t)
	tb.subscribeOverlapping()
	tb.startOperator("operator", "--nats-url="+srv.URL(), "--nats-create-stream")
	tb.waitReady()

	_, js := srv.Producer(t)
	waitUntil(t, readyTimeout, "the operator to create the stream", func() (bool, string) {
		_, err := js.Stream(tb.ctx, natssource.DefaultStream)
		return err == nil, fmt.Sprint(err)
	})

	produced := make([]producedEvent, events)
	for i := range produced {
		eventType, tenant := harness.MixedEvent(i)
		produced[i] = producedEvent{ID: fmt.Sprintf("%s-%05d", tb.ns, i), Type: eventType, Tenant: tenant}
	}
	want := tb.expected(produced)
	var published atomic.Int64
	publishDone := make(chan error, 1)
	go func() { publishDone <- publishPaced(tb.ctx, js, produced, &published) }()

	waitUntil(t, quiescentTimeout, "half the events published and the first delivered", func() (bool, string) {
		n, got := published.Load(), len(tb.recv.Requests(""))
		return n >= events/2 && got > 0, fmt.Sprintf("%d published, %d received", n, got)
	})
	t.Logf("Restarting NATS with %d of %d events published, %d requests received, consumer %s",
		published.Load(), events, len(tb.recv.Requests("")), consumerState(tb.ctx, js))
	if err := srv.Restart(); err != nil {
		t.Fatalf("restart nats: %v", err)
	}
	if err := <-publishDone; err != nil {
		t.Fatalf("publish: %v", err)
	}

	tb.waitQuiescent(want, func() (bool, string) { return harness.ConsumerDrained(tb.ctx, js) })
	tb.assertDelivered(want)
}

// publishPaced publishes the events in small groups, so publishing spans the restart, retrying each until it is
// acknowledged.
func publishPaced(ctx context.Context, js jetstream.JetStream, events []producedEvent, published *atomic.Int64) error {
	for i, p := range events {
		ev := source.Event{ID: p.ID, Type: p.Type, TenantID: p.Tenant, Collection: "orders",
			OccurredAt: time.Now(), Data: []byte(fmt.Sprintf(`{"seq":%d}`, i))}
		if err := harness.PublishRetrying(ctx, js, ev); err != nil {
			return fmt.Errorf("event %d of %d: %w", i+1, len(events), err)
		}
		published.Add(1)
		if i%50 == 49 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func consumerState(ctx context.Context, js jetstream.JetStream) string {
	_, state := harness.ConsumerDrained(ctx, js)
	return state
}
