package e2e

import (
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// TestShutdownLetsAnInFlightAttemptFinish stops the operator (SIGTERM, as Kubernetes does on a rollout) while
// a receiver is still answering, and checks that the attempt completes and is recorded: otherwise the receiver
// would get the event again from the next operator with no record of the first.
func TestShutdownLetsAnInFlightAttemptFinish(t *testing.T) {
	tb := newTestbed(t)
	tb.recv.Script("/slow", harness.Response{Status: 200, Delay: 2 * time.Second})
	tb.subscribe("slow", func(producedEvent) bool { return true }, fixtures.Timeout(10*time.Second))
	op := tb.startOperator("op")
	tb.waitReady()

	// Sealed with the key the operator made, as its own deliveries are (outside a cluster it keeps the key in
	// namespace default).
	key, err := controller.LoadSealKey(tb.ctx, tb.c, "default", controller.DefaultSealSecretName)
	if err != nil {
		t.Fatal(err)
	}
	d := fixtures.Delivery(tb.ns, "slow", "evt-shutdown", "order.created", map[string]any{"order_id": 1}, fixtures.SealedBy(controller.NewSealer(key)))
	if err := tb.c.Create(tb.ctx, d); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, "the attempt to reach the receiver", func() (bool, string) {
		n := len(tb.recv.Requests("/slow"))
		return n > 0, "no request yet"
	})
	op.Stop(time.Minute)

	got := &hookpostv1.WebhookDelivery{}
	if err := tb.c.Get(tb.ctx, client.ObjectKeyFromObject(d), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != hookpostv1.DeliverySucceeded || got.Status.Attempts != 1 || got.Status.LastAttempt == nil || got.Status.LastAttempt.StatusCode != 200 {
		t.Fatalf("after shutdown: phase %q, attempts %d, last %+v; want the in-flight attempt recorded as Succeeded", got.Status.Phase, got.Status.Attempts, got.Status.LastAttempt)
	}
	if n := len(tb.recv.Requests("/slow")); n != 1 {
		t.Fatalf("receiver got %d requests, want 1", n)
	}
	if _, ok := tb.recv.Requests("/slow")[0].Header["X-Hookpost-Test"]; ok {
		t.Errorf("a delivery sealed with the operator's key was sent as a test event")
	}
}
