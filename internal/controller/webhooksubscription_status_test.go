package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

func TestReadyCondition(t *testing.T) {
	ref := &hookpostv1.SecretKeyRef{Name: "s", Key: "secret"}
	tests := []struct {
		name       string
		paused     bool
		secret     secretResolution
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"a secret from spec", false, secretResolution{ref: ref}, metav1.ConditionTrue, hookpostv1.ReasonSecretReady},
		{"a generated secret", false, secretResolution{ref: ref, generated: true}, metav1.ConditionTrue, hookpostv1.ReasonSecretGenerated},
		{"a missing secret", false, secretResolution{reason: hookpostv1.ReasonSecretNotFound, message: "m"}, metav1.ConditionFalse, hookpostv1.ReasonSecretNotFound},
		{"a missing key outranks paused", true, secretResolution{reason: hookpostv1.ReasonSecretKeyMissing, message: "m"}, metav1.ConditionFalse, hookpostv1.ReasonSecretKeyMissing},
		{"paused", true, secretResolution{ref: ref}, metav1.ConditionFalse, hookpostv1.ReasonPaused},
	}
	bad := &hookpostv1.WebhookSubscription{}
	bad.Spec.Headers = map[string]string{"X-Ok": "fine", "X-Team": "a\r\nX-Injected: 1"}
	if c := readyCondition(bad, secretResolution{ref: ref}); c.Reason != hookpostv1.ReasonInvalidHeader || c.Status != metav1.ConditionFalse {
		t.Errorf("a header value with CRLF: got %s/%s, want False/InvalidHeader", c.Status, c.Reason)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &hookpostv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
			sub.Spec.Paused = tc.paused
			c := readyCondition(sub, tc.secret)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.ObservedGeneration != 3 || c.Message == "" {
				t.Fatalf("got %+v, want %s/%s with a message", c, tc.wantStatus, tc.wantReason)
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
			c := readyCondition(sub, tc.secret)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantMessage) {
				t.Fatalf("got %+v, want %s/%s with a message containing %q", c, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
			if len(c.Message) > maxFilterMessage+200 {
				t.Fatalf("message is %d bytes long, want it bounded", len(c.Message))
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
