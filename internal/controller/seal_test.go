package controller

import (
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// TestSealSurvivesTheAPIServersRoundTrip seals a delivery as ingest builds it and verifies it as the API server
// gives it back: keys sorted, whitespace gone, numbers re-encoded, occurredAt in whole seconds.
func TestSealSurvivesTheAPIServersRoundTrip(t *testing.T) {
	s := NewSealer([]byte("0123456789abcdef0123456789abcdef"))
	built := func(raw string, at time.Time) *hookpostv1.WebhookDelivery {
		return &hookpostv1.WebhookDelivery{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-abc"},
			Spec: hookpostv1.WebhookDeliverySpec{SubscriptionName: "orders",
				Event: hookpostv1.EventMeta{ID: "evt-1", Type: "order.paid", TenantID: "42", OccurredAt: metav1.NewTime(at)},
				Data:  &apiextensionsv1.JSON{Raw: []byte(raw)}},
		}
	}
	at := time.Date(2025, 11, 16, 10, 30, 0, 123456789, time.UTC)
	d := built(`{ "z": 1.0, "a": [1e2, "x"], "n": 12345678901234567 }`, at)
	s.Seal(d)
	back := built(`{"a":[100,"x"],"n":12345678901234568,"z":1}`, at.Truncate(time.Second))
	back.Annotations = d.Annotations
	if !s.Sealed(back) {
		t.Fatal("a seal does not verify on the object the API server gives back")
	}
	for name, change := range map[string]func(*hookpostv1.WebhookDelivery){
		"tenant":       func(d *hookpostv1.WebhookDelivery) { d.Spec.Event.TenantID = "43" },
		"type":         func(d *hookpostv1.WebhookDelivery) { d.Spec.Event.Type = "order.refunded" },
		"data":         func(d *hookpostv1.WebhookDelivery) { d.Spec.Data.Raw = []byte(`{"a":[100,"x"],"n":1,"z":1}`) },
		"subscription": func(d *hookpostv1.WebhookDelivery) { d.Spec.SubscriptionName = "refunds" },
		"namespace":    func(d *hookpostv1.WebhookDelivery) { d.Namespace = "other" },
		"occurredAt":   func(d *hookpostv1.WebhookDelivery) { d.Spec.Event.OccurredAt = metav1.NewTime(at.Add(time.Hour)) },
		"ordering": func(d *hookpostv1.WebhookDelivery) {
			d.Spec.Ordering = &hookpostv1.DeliveryOrdering{Key: "o-1", Source: "postgres", Position: 1}
		},
	} {
		c := back.DeepCopy()
		change(c)
		if s.Sealed(c) {
			t.Errorf("a seal still verifies after the %s changed", name)
		}
	}
	ordered := back.DeepCopy()
	ordered.Spec.Ordering = &hookpostv1.DeliveryOrdering{Key: "o-1", Source: "postgres", Position: 7}
	s.Seal(ordered)
	moved := ordered.DeepCopy()
	moved.Spec.Ordering.Position = 1
	if !s.Sealed(ordered) || s.Sealed(moved) {
		t.Error("an ordered delivery's seal does not cover its place in its key's sequence")
	}
	if NewSealer([]byte("another key, 32 bytes long......")).Sealed(back) || (*Sealer)(nil).Sealed(back) {
		t.Error("a seal verifies under another key, or under none")
	}
}
