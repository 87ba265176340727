package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
)

func TestReadyCondition(t *testing.T) {
	ref := &hookpostv1.SecretKeyRef{Name: "s", Key: "secret"}
	tlsSpec := &hookpostv1.SubscriptionTLS{
		ClientCertificateRef: &hookpostv1.LocalSecretRef{Name: "client-cert"},
		CABundleRef:          &hookpostv1.CABundleRef{ConfigMapName: "receiver-ca", Key: "ca.crt"},
	}
	tests := []struct {
		name        string
		paused      bool
		tls         *hookpostv1.SubscriptionTLS
		secret      secretResolution
		material    TLSMaterial
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantMessage string
	}{
		{name: "a secret from spec", secret: secretResolution{ref: ref}, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonSecretReady},
		{name: "a generated secret", secret: secretResolution{ref: ref, generated: true}, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonSecretGenerated},
		{name: "a missing secret", secret: secretResolution{reason: hookpostv1.ReasonSecretNotFound, message: "m"}, wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonSecretNotFound},
		{name: "a missing key outranks paused", paused: true, secret: secretResolution{reason: hookpostv1.ReasonSecretKeyMissing, message: "m"}, wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonSecretKeyMissing},
		{name: "paused", paused: true, secret: secretResolution{ref: ref}, wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonPaused},
		{name: "TLS material ready is named in the message", tls: tlsSpec, secret: secretResolution{ref: ref}, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonSecretReady,
			wantMessage: "signing with Secret s, key secret; client certificate from Secret client-cert; receiver verified with the CA bundle in ConfigMap receiver-ca, key ca.crt"},
		{name: "unusable TLS material", tls: tlsSpec, secret: secretResolution{ref: ref}, material: TLSMaterial{Reason: hookpostv1.ReasonTLSInvalid, Message: "m"},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonTLSInvalid, wantMessage: "m"},
		{name: "unusable TLS material outranks paused", paused: true, tls: tlsSpec, secret: secretResolution{ref: ref}, material: TLSMaterial{Reason: hookpostv1.ReasonTLSNotLabeled, Message: "m"},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonTLSNotLabeled, wantMessage: "m"},
		{name: "a missing signing secret outranks TLS", secret: secretResolution{reason: hookpostv1.ReasonSecretNotFound, message: "m"}, material: TLSMaterial{Reason: hookpostv1.ReasonTLSNotFound, Message: "t"},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonSecretNotFound, wantMessage: "m"},
	}
	bad := &hookpostv1.WebhookSubscription{}
	bad.Spec.Headers = map[string]string{"X-Ok": "fine", "X-Team": "a\r\nX-Injected: 1"}
	if c := readyCondition(bad, secretResolution{ref: ref}, TLSMaterial{}, false); c.Reason != hookpostv1.ReasonInvalidHeader || c.Status != metav1.ConditionFalse {
		t.Errorf("a header value with CRLF: got %s/%s, want False/InvalidHeader", c.Status, c.Reason)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &hookpostv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
			sub.Spec.Paused = tc.paused
			sub.Spec.TLS = tc.tls
			c := readyCondition(sub, tc.secret, tc.material, false)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.ObservedGeneration != 3 || c.Message == "" {
				t.Fatalf("got %+v, want %s/%s with a message", c, tc.wantStatus, tc.wantReason)
			}
			if tc.wantMessage != "" && c.Message != tc.wantMessage {
				t.Fatalf("message %q, want %q", c.Message, tc.wantMessage)
			}
		})
	}
}

func TestReadyConditionFilter(t *testing.T) {
	ref := &hookpostv1.SecretKeyRef{Name: "s", Key: "secret"}
	for _, tc := range []struct {
		name, expression string
		secret           secretResolution
		wantStatus       metav1.ConditionStatus
		wantReason       string
		// wantMessage is a part of the message; "" checks none.
		wantMessage string
	}{
		{name: "a valid expression", expression: "data.amount > 100", secret: secretResolution{ref: ref},
			wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonSecretReady},
		{name: "no expression", secret: secretResolution{ref: ref}, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonSecretReady},
		{name: "an undeclared variable quotes the compiler", expression: "amount > 100", secret: secretResolution{ref: ref},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonInvalidFilter,
			wantMessage: "spec.filter.expression is invalid, so no event is delivered until it is fixed (see docs/subscriptions.md, Content filters): ERROR: <input>:1:1: undeclared reference to 'amount'"},
		{name: "not a bool", expression: "tenant", secret: secretResolution{ref: ref},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonInvalidFilter, wantMessage: "a filter must evaluate to a bool"},
		{name: "an invalid filter outranks a missing secret", expression: "data.amount >", secret: secretResolution{reason: hookpostv1.ReasonSecretNotFound, message: "m"},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonInvalidFilter, wantMessage: "Syntax error"},
		{name: "a long message is bounded", expression: strings.Repeat("x", 4000), secret: secretResolution{ref: ref},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonInvalidFilter, wantMessage: "undeclared reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := &hookpostv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
			sub.Spec.Filter = &hookpostv1.EventFilter{Expression: tc.expression}
			c := readyCondition(sub, tc.secret, TLSMaterial{}, false)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantMessage) {
				t.Fatalf("got %+v, want %s/%s with a message containing %q", c, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
			if len(c.Message) > maxFilterMessage+200 {
				t.Fatalf("message is %d bytes long, want it bounded", len(c.Message))
			}
		})
	}
}

func TestReadyConditionOrderingKey(t *testing.T) {
	ref := &hookpostv1.SecretKeyRef{Name: "s", Key: "secret"}
	for _, tc := range []struct {
		name     string
		ordering *hookpostv1.Ordering
		// filter is spec.filter.expression, "" for none.
		filter     string
		wantStatus metav1.ConditionStatus
		wantReason string
		// wantMessage is a part of the message; "" checks none.
		wantMessage string
	}{
		{name: "a key from data", ordering: &hookpostv1.Ordering{Key: "string(data.order_id)"}, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonSecretReady},
		{name: "no ordering", wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonSecretReady},
		{name: "an undeclared variable quotes the compiler", ordering: &hookpostv1.Ordering{Key: "order_id"},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonInvalidOrderingKey,
			wantMessage: "spec.ordering.key is invalid, so every event gets the key \"\" and its deliveries wait until it is fixed (see docs/subscriptions.md, Ordered delivery): ERROR: <input>:1:1: undeclared reference to 'order_id'"},
		{name: "a bool is not a key", ordering: &hookpostv1.Ordering{Key: "tenant == 'a'"},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonInvalidOrderingKey, wantMessage: "an ordering key must evaluate to a string or a number"},
		{name: "an invalid filter is named first", ordering: &hookpostv1.Ordering{Key: "order_id"}, filter: "amount > 1",
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonInvalidFilter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := &hookpostv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
			sub.Spec.Ordering = tc.ordering
			if tc.filter != "" {
				sub.Spec.Filter = &hookpostv1.EventFilter{Expression: tc.filter}
			}
			c := readyCondition(sub, secretResolution{ref: ref}, TLSMaterial{}, false)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantMessage) {
				t.Fatalf("got %+v, want %s/%s with a message containing %q", c, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
		})
	}
}

func at(min int) metav1.Time { return metav1.NewTime(time.Date(2030, 1, 1, 0, min, 0, 0, time.UTC)) }

func withHistory(phase hookpostv1.DeliveryPhase, attempts ...hookpostv1.AttemptRecord) hookpostv1.WebhookDelivery {
	d := hookpostv1.WebhookDelivery{}
	d.Status.Phase = phase
	d.Status.History = attempts
	if phase.Finished() {
		last := attempts[len(attempts)-1].Time
		d.Status.CompletionTime = &last
	}
	return d
}

func ok(min int) hookpostv1.AttemptRecord {
	return hookpostv1.AttemptRecord{Time: at(min), StatusCode: 200}
}
func bad(min int) hookpostv1.AttemptRecord {
	return hookpostv1.AttemptRecord{Time: at(min), StatusCode: 500, Error: "HTTP 500"}
}

func TestComputeDeliveryStats(t *testing.T) {
	ds := []hookpostv1.WebhookDelivery{
		withHistory(hookpostv1.DeliverySucceeded, bad(1), ok(2)),
		withHistory(hookpostv1.DeliveryFailed, bad(3), bad(4)),
		withHistory(hookpostv1.DeliveryRetrying, bad(5)),
		withHistory(hookpostv1.DeliveryPending),
	}
	s := computeDeliveryStats(hookpostv1.WebhookSubscriptionStatus{}, ds)
	if s.succeeded != 1 || s.failed != 1 || s.pending != 2 {
		t.Fatalf("counts = %d/%d/%d, want 1 succeeded, 1 failed, 2 pending", s.succeeded, s.failed, s.pending)
	}
	if !s.lastSuccess.Equal(ptrTime(at(2))) || !s.lastFailure.Equal(ptrTime(at(5))) || !s.lastDelivery.Equal(ptrTime(at(5))) {
		t.Fatalf("times = %v %v %v", s.lastSuccess, s.lastFailure, s.lastDelivery)
	}
	if s.consecutiveFailures != 3 {
		t.Fatalf("consecutiveFailures = %d, want the 3 failed attempts after the last success", s.consecutiveFailures)
	}

	// Pruning the only successful delivery must not move lastSuccessTime back or reset the streak's anchor.
	prev := hookpostv1.WebhookSubscriptionStatus{LastSuccessTime: ptrTime(at(2))}
	s = computeDeliveryStats(prev, ds[1:])
	if !s.lastSuccess.Equal(ptrTime(at(2))) || s.consecutiveFailures != 3 {
		t.Fatalf("after pruning: lastSuccess %v, consecutiveFailures %d", s.lastSuccess, s.consecutiveFailures)
	}

	var st hookpostv1.WebhookSubscriptionStatus
	st.PrunedSucceeded, st.PrunedFailed, st.DeliveredWithoutObject = 10, 2, 100
	applyDeliveryStats(&st, computeDeliveryStats(st, ds))
	if st.Delivered != 111 || st.Failed != 3 || st.Pending != 2 {
		t.Fatalf("counters = %d/%d/%d, want pruned deliveries and successes without an object counted", st.Delivered, st.Failed, st.Pending)
	}
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }

func TestDeliveriesToPruneKeepsTheNewest(t *testing.T) {
	var ds []hookpostv1.WebhookDelivery
	for i := 0; i < 5; i++ {
		d := withHistory(hookpostv1.DeliverySucceeded, ok(10-i)) // newest first, to prove sorting
		d.Name = string(rune('a' + i))
		ds = append(ds, d)
	}
	f := withHistory(hookpostv1.DeliveryFailed, bad(1))
	ds = append(ds, f, withHistory(hookpostv1.DeliveryRetrying, bad(2)))
	two, one := int32(2), int32(1)
	succeeded, failed := deliveriesToPrune(ds, hookpostv1.HistoryLimits{SucceededLimit: &two, FailedLimit: &one})
	var names []string
	for _, d := range succeeded {
		names = append(names, d.Name)
	}
	if len(names) != 3 || names[0] != "e" || names[1] != "d" || names[2] != "c" {
		t.Fatalf("pruned %v, want the three oldest succeeded (e, d, c)", names)
	}
	if len(failed) != 0 {
		t.Fatalf("pruned %d failed, want none within the limit", len(failed))
	}
	zero := int32(0)
	_, failed = deliveriesToPrune(ds, hookpostv1.HistoryLimits{FailedLimit: &zero})
	if len(failed) != 1 {
		t.Fatalf("a zero limit keeps no failed delivery, pruned %d", len(failed))
	}
}

func TestKeptWhenPruned(t *testing.T) {
	tests := []struct {
		name     string
		phase    hookpostv1.DeliveryPhase
		attempts int32
		want     bool
	}{
		{name: "failed at once", phase: hookpostv1.DeliveryFailed, attempts: 1, want: true},
		{name: "failed after retries", phase: hookpostv1.DeliveryFailed, attempts: 6, want: true},
		{name: "failed without an attempt (invalid request)", phase: hookpostv1.DeliveryFailed, want: true},
		{name: "succeeded after a retry", phase: hookpostv1.DeliverySucceeded, attempts: 2, want: true},
		// One per event on the fast path's success objects, or with --first-attempt=false: the source has them.
		{name: "succeeded at the first attempt", phase: hookpostv1.DeliverySucceeded, attempts: 1, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &hookpostv1.WebhookDelivery{Status: hookpostv1.WebhookDeliveryStatus{Phase: tc.phase, Attempts: tc.attempts}}
			if got := keptWhenPruned(d); got != tc.want {
				t.Errorf("keptWhenPruned = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCircuitCondition(t *testing.T) {
	since := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	open := &metav1.Condition{Type: hookpostv1.ConditionCircuitOpen, Status: metav1.ConditionTrue, Reason: hookpostv1.ReasonCircuitOpened}
	closed := &metav1.Condition{Type: hookpostv1.ConditionCircuitOpen, Status: metav1.ConditionFalse, Reason: hookpostv1.ReasonCircuitClosed}
	tests := []struct {
		name        string
		circuit     delivery.Circuit
		prev        *metav1.Condition
		wantStatus  metav1.ConditionStatus // "" wants the condition left absent
		wantReason  string
		wantMessage string
	}{
		{name: "never opened", circuit: delivery.Circuit{State: delivery.CircuitClosed}},
		{name: "still closed after a recovery", circuit: delivery.Circuit{State: delivery.CircuitClosed}, prev: closed,
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonCircuitClosed},
		{name: "open", circuit: delivery.Circuit{State: delivery.CircuitOpen, Since: since, Until: since.Add(30 * time.Second), Reason: "10 consecutive failed attempts"},
			wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonCircuitOpened,
			wantMessage: "circuit open since 2030-01-01T12:00:00Z after 10 consecutive failed attempts: deliveries wait, spending no retry budget; the next probe attempt is at 2030-01-01T12:00:30Z"},
		{name: "half-open", circuit: delivery.Circuit{State: delivery.CircuitHalfOpen, Since: since, Reason: "the probe attempt failed"}, prev: open,
			wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonCircuitOpened,
			wantMessage: "circuit open since 2030-01-01T12:00:00Z after the probe attempt failed: deliveries wait, spending no retry budget; a probe attempt tests the endpoint now"},
		{name: "closed by a probe", circuit: delivery.Circuit{State: delivery.CircuitClosed, Since: since}, prev: open,
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonCircuitClosed,
			wantMessage: "a probe attempt succeeded; the deliveries that waited are sent again, at most 20 per second (spec.circuitBreaker.drainPerSecond)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &hookpostv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
			drain := int32(20)
			sub.Spec.CircuitBreaker.DrainPerSecond = &drain
			c := circuitCondition(sub, tc.circuit, tc.prev)
			if tc.wantStatus == "" {
				if c != nil {
					t.Fatalf("got %+v, want no condition", c)
				}
				return
			}
			if c == nil || c.Status != tc.wantStatus || c.Reason != tc.wantReason {
				t.Fatalf("got %+v, want %s/%s", c, tc.wantStatus, tc.wantReason)
			}
			if tc.wantMessage != "" && c.Message != tc.wantMessage {
				t.Fatalf("message %q, want %q", c.Message, tc.wantMessage)
			}
		})
	}
}

func TestSigningKeysStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	current := hookpostv1.SigningKey{ID: "new", Role: hookpostv1.SigningKeyCurrent}
	tests := []struct {
		name       string
		recorded   []hookpostv1.SigningKey
		previousID string
		want       []hookpostv1.SigningKey
		wantChange keyChange
	}{
		{name: "no rotation", want: []hookpostv1.SigningKey{current}},
		{
			name:       "a previous key seen for the first time signs for the overlap",
			recorded:   []hookpostv1.SigningKey{{ID: "old", Role: hookpostv1.SigningKeyCurrent}},
			previousID: "old",
			want:       []hookpostv1.SigningKey{current, {ID: "old", Role: hookpostv1.SigningKeyPrevious, ExpiresAt: at(time.Hour)}},
			wantChange: rotationStarted,
		},
		{
			name:       "during the overlap the expiry stays",
			recorded:   []hookpostv1.SigningKey{current, {ID: "old", Role: hookpostv1.SigningKeyPrevious, ExpiresAt: at(time.Minute)}},
			previousID: "old",
			want:       []hookpostv1.SigningKey{current, {ID: "old", Role: hookpostv1.SigningKeyPrevious, ExpiresAt: at(time.Minute)}},
		},
		{
			name:       "at its expiry the previous key still in the Secret is Expired",
			recorded:   []hookpostv1.SigningKey{current, {ID: "old", Role: hookpostv1.SigningKeyPrevious, ExpiresAt: at(0)}},
			previousID: "old",
			want:       []hookpostv1.SigningKey{current, {ID: "old", Role: hookpostv1.SigningKeyExpired, ExpiresAt: at(0)}},
			wantChange: rotationFinished,
		},
		{
			name:       "an Expired key stays Expired",
			recorded:   []hookpostv1.SigningKey{current, {ID: "old", Role: hookpostv1.SigningKeyExpired, ExpiresAt: at(-time.Hour)}},
			previousID: "old",
			want:       []hookpostv1.SigningKey{current, {ID: "old", Role: hookpostv1.SigningKeyExpired, ExpiresAt: at(-time.Hour)}},
		},
		{
			name:       "a previous key removed before its expiry finishes the rotation",
			recorded:   []hookpostv1.SigningKey{current, {ID: "old", Role: hookpostv1.SigningKeyPrevious, ExpiresAt: at(time.Minute)}},
			want:       []hookpostv1.SigningKey{current},
			wantChange: rotationFinished,
		},
		{
			name:       "a second rotation starts a new overlap",
			recorded:   []hookpostv1.SigningKey{{ID: "mid", Role: hookpostv1.SigningKeyCurrent}, {ID: "old", Role: hookpostv1.SigningKeyExpired, ExpiresAt: at(-time.Hour)}},
			previousID: "mid",
			want:       []hookpostv1.SigningKey{current, {ID: "mid", Role: hookpostv1.SigningKeyPrevious, ExpiresAt: at(time.Hour)}},
			wantChange: rotationStarted,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, change := signingKeysStatus(tc.recorded, "new", tc.previousID, time.Hour, now)
			if change != tc.wantChange || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v (change %d), want %v (change %d)", got, change, tc.want, tc.wantChange)
			}
		})
	}
}
