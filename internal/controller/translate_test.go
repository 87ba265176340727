package controller

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/signing"
)

// readySubscription is a subscription whose status describes its spec and names a secret: one that may send.
func readySubscription() *hookpostv1.WebhookSubscription {
	sub := &hookpostv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop", Generation: 4}}
	sub.Status.ObservedGeneration = 4
	sub.Status.SigningSecretRef = &hookpostv1.SecretKeyRef{Name: "orders-signing-secret", Key: "secret"}
	sub.Status.Conditions = []metav1.Condition{{Type: hookpostv1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 4, Reason: hookpostv1.ReasonSecretGenerated}}
	return sub
}

func TestGateFor(t *testing.T) {
	tests := []struct {
		name       string
		change     func(*hookpostv1.WebhookSubscription)
		wantOpen   bool
		wantReason string
	}{
		{name: "ready", change: func(*hookpostv1.WebhookSubscription) {}, wantOpen: true},
		{name: "paused", change: func(s *hookpostv1.WebhookSubscription) { s.Spec.Paused = true }, wantReason: hookpostv1.ReasonSubscriptionPaused},
		{name: "paused outranks not ready", change: func(s *hookpostv1.WebhookSubscription) { s.Spec.Paused, s.Status.Conditions = true, nil }, wantReason: hookpostv1.ReasonSubscriptionPaused},
		{name: "no secret resolved yet", change: func(s *hookpostv1.WebhookSubscription) { s.Status.SigningSecretRef = nil }, wantReason: hookpostv1.ReasonSubscriptionNotReady},
		{name: "Ready false", change: func(s *hookpostv1.WebhookSubscription) { s.Status.Conditions[0].Status = metav1.ConditionFalse }, wantReason: hookpostv1.ReasonSubscriptionNotReady},
		{name: "no Ready condition", change: func(s *hookpostv1.WebhookSubscription) { s.Status.Conditions = nil }, wantReason: hookpostv1.ReasonSubscriptionNotReady},
		{
			// The spec changed (a new scheme or secretRef) and the controller has not caught up: the old secret would
			// sign wrongly.
			name: "status older than the spec", change: func(s *hookpostv1.WebhookSubscription) { s.Generation = 5 }, wantReason: hookpostv1.ReasonSubscriptionNotReady,
		},
		{name: "Ready for an older spec", change: func(s *hookpostv1.WebhookSubscription) { s.Status.Conditions[0].ObservedGeneration = 3 }, wantReason: hookpostv1.ReasonSubscriptionNotReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := readySubscription()
			tt.change(sub)
			g := GateFor(sub)
			if g.Open() != tt.wantOpen || g.Reason != tt.wantReason {
				t.Fatalf("gate = %+v, want open %v reason %q", g, tt.wantOpen, tt.wantReason)
			}
			if g.Open() && *g.SecretRef != *sub.Status.SigningSecretRef {
				t.Errorf("open gate names %v, want the status's secret", g.SecretRef)
			}
			if !g.Open() && g.Message == "" {
				t.Error("a closed gate says nothing about why")
			}
		})
	}
}

func TestTargetForUsesTheStoredSpec(t *testing.T) {
	sub := readySubscription()
	sub.Spec = hookpostv1.WebhookSubscriptionSpec{
		URL: "https://receiver.example/hooks", PayloadFormat: hookpostv1.PayloadFormatCollection,
		Signing: hookpostv1.Signing{Scheme: hookpostv1.SigningSchemeHMACSHA256Hex, Header: "X-urBackend-Signature",
			Additional: []hookpostv1.AdditionalSignature{{Scheme: hookpostv1.SigningSchemeStandardWebhooks}, {Scheme: hookpostv1.SigningSchemeHMACSHA256Hex}}},
		Headers:   map[string]string{"Authorization": "Bearer t"},
		Timeout:   &metav1.Duration{Duration: 7 * time.Second},
		Retry:     hookpostv1.RetryPolicy{Schedule: []metav1.Duration{{Duration: time.Second}, {Duration: time.Minute}}, RetryOn4xx: true},
		RateLimit: &hookpostv1.RateLimit{PerSecond: 10, Burst: 3},
	}
	got := TargetFor(sub, nil)
	if got.Namespace != "shop" || got.Subscription != "orders" || got.URL != sub.Spec.URL || got.Format != "Collection" ||
		!slices.Equal(got.Signatures, []signing.Signature{{Scheme: "HMACSHA256Hex", Header: "X-urBackend-Signature"}, {Scheme: "StandardWebhooks"}, {Scheme: "HMACSHA256Hex"}}) ||
		got.StaticHeaders["Authorization"] != "Bearer t" ||
		got.Timeout != 7*time.Second || !got.RetryOn4xx || len(got.Schedule) != 2 || got.Schedule[1] != time.Minute ||
		got.Rate != (delivery.RateLimit{PerSecond: 10, Burst: 3}) {
		t.Fatalf("target = %+v", got)
	}
	sub.Spec.RateLimit = nil
	if got := TargetFor(sub, nil); got.Rate.Limited() {
		t.Errorf("target of a subscription without spec.rateLimit is limited: %+v", got.Rate)
	}
	att := got.Attempt(EventOf(&hookpostv1.WebhookDelivery{}), signing.Keys{Current: "s3cret"}, "orders-abc", 2, true, time.Unix(0, 0))
	if att.Event.Source != "/hookpost/shop/orders" || att.Number != 2 || !att.Test || att.Keys.Current != "s3cret" || att.DeliveryName != "orders-abc" {
		t.Errorf("attempt = %+v", att)
	}
}

func TestLedgerAttemptTakesOutcomeAndNextRetryFromStatus(t *testing.T) {
	next := metav1.NewTime(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	d := &hookpostv1.WebhookDelivery{ObjectMeta: metav1.ObjectMeta{Name: "orders-abc", Namespace: "shop"}}
	d.Spec.SubscriptionName = "orders"
	d.Spec.Event = hookpostv1.EventMeta{ID: "e1", Type: "order.created", TenantID: "7"}
	tests := []struct {
		name        string
		status      hookpostv1.WebhookDeliveryStatus
		wantOutcome ledger.Outcome
		wantNext    time.Time
		wantReplay  bool
	}{
		{name: "succeeded", status: hookpostv1.WebhookDeliveryStatus{Phase: hookpostv1.DeliverySucceeded, Attempts: 1}, wantOutcome: ledger.OutcomeSucceeded},
		{name: "retrying", status: hookpostv1.WebhookDeliveryStatus{Phase: hookpostv1.DeliveryRetrying, Attempts: 2, NextAttemptTime: &next}, wantOutcome: ledger.OutcomeRetrying, wantNext: next.Time},
		{name: "failed after a replay", status: hookpostv1.WebhookDeliveryStatus{Phase: hookpostv1.DeliveryFailed, Attempts: 7, AttemptsBeforeReplay: 6}, wantOutcome: ledger.OutcomeFailed, wantReplay: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.Status = tt.status
			a := LedgerAttempt(d, delivery.Outcome{StatusCode: 500, Class: delivery.ClassRetry, Error: "HTTP 500"}, next.Time)
			if a.Outcome != tt.wantOutcome || !a.NextRetry.Equal(tt.wantNext) || a.Replay != tt.wantReplay || a.Number != int(tt.status.Attempts) ||
				a.DeliveryName != "orders-abc" || a.Subscription != "orders" || a.EventID != "e1" || a.TenantID != "7" || a.ErrorClass != "Retry" {
				t.Fatalf("ledger attempt = %+v", a)
			}
		})
	}
}

func TestKeysFor(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	later := metav1.NewTime(now.Add(time.Minute))
	data := map[string][]byte{"secret": []byte("new"), "secret.previous": []byte("old")}
	old := signing.Fingerprint("old")
	tests := []struct {
		name     string
		recorded []hookpostv1.SigningKey
		data     map[string][]byte
		now      time.Time
		want     signing.Keys
	}{
		{name: "no previous key", data: map[string][]byte{"secret": []byte("new")}, now: now, want: signing.Keys{Current: "new"}},
		{name: "a previous key not recorded yet signs", data: data, now: now, want: signing.Keys{Current: "new", Previous: "old"}},
		{
			name:     "before its expiry",
			recorded: []hookpostv1.SigningKey{{ID: old, Role: hookpostv1.SigningKeyPrevious, ExpiresAt: &later}},
			data:     data, now: now, want: signing.Keys{Current: "new", Previous: "old"},
		},
		{
			name:     "at its expiry, before the controller marks it",
			recorded: []hookpostv1.SigningKey{{ID: old, Role: hookpostv1.SigningKeyPrevious, ExpiresAt: &later}},
			data:     data, now: later.Time, want: signing.Keys{Current: "new"},
		},
		{
			name:     "Expired",
			recorded: []hookpostv1.SigningKey{{ID: old, Role: hookpostv1.SigningKeyExpired, ExpiresAt: &later}},
			data:     data, now: now, want: signing.Keys{Current: "new"},
		},
		{name: "no current key", data: map[string][]byte{"secret.previous": []byte("old")}, now: now, want: signing.Keys{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := KeysFor(tc.recorded, tc.data, "secret", tc.now); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestPrunedDeliveryIsMadeAgainAsItWas: what the ledger keeps of a pruned delivery makes the same delivery again,
// under the same name, sealed (a real event), with the phase and reason a WebhookReplay's selector reads.
func TestPrunedDeliveryIsMadeAgainAsItWas(t *testing.T) {
	sealer := NewSealer([]byte("0123456789abcdef0123456789abcdef"))
	occurred := metav1.NewTime(time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC))
	tests := []struct {
		name   string
		phase  hookpostv1.DeliveryPhase
		reason string
		data   []byte
	}{
		{name: "failed, rejected", phase: hookpostv1.DeliveryFailed, reason: hookpostv1.ReasonRejected, data: []byte(`{"order_id":7}`)},
		{name: "succeeded", phase: hookpostv1.DeliverySucceeded, reason: hookpostv1.ReasonSucceeded, data: []byte(`{"n":1}`)},
		{name: "no data", phase: hookpostv1.DeliveryFailed, reason: hookpostv1.ReasonRetriesExhausted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := hookpostv1.EventMeta{ID: "evt-1", Type: "order.created", TenantID: "42", Collection: "orders", OccurredAt: occurred}
			d := NewDelivery("shop", "orders", "uid-1", ev, tc.data, sealer)
			d.CreationTimestamp = metav1.NewTime(occurred.Add(time.Second))
			d.Status.Phase = tc.phase
			d.Status.Conditions = []metav1.Condition{{Type: hookpostv1.ConditionDelivered, Status: metav1.ConditionFalse, Reason: tc.reason}}

			p := PrunedOf(d)
			again := DeliveryOfPruned(p, "uid-1", sealer)
			if again.Name != d.Name || again.Name != hookpostv1.DeliveryName("orders", "evt-1") {
				t.Errorf("made again as %s, was %s", again.Name, d.Name)
			}
			if !sealer.Sealed(again) {
				t.Error("made again without a valid seal: it would be sent as a test event")
			}
			if string(EventOf(again).Data) != string(tc.data) || again.Spec.Event != d.Spec.Event || again.Spec.Test {
				t.Errorf("spec %+v, want %+v", again.Spec, d.Spec)
			}
			sel := hookpostv1.ReplaySelector{Phases: []hookpostv1.DeliveryPhase{tc.phase}, Reasons: []hookpostv1.DeliveredReason{hookpostv1.DeliveredReason(tc.reason)}}
			if !replaySelects(sel, occurred.Add(time.Hour), again) {
				t.Errorf("a selector for phase %s and reason %s does not select it", tc.phase, tc.reason)
			}
		})
	}
}
