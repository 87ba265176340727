package controller

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/envelope"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/signing"
)

// TargetFor translates a subscription into the settings its attempts are built from. The API server applies the
// defaults (format, scheme, timeout, schedule) when it stores and reads the object, so none is re-resolved here.
// It is the one CR -> domain translation of a subscription: the first attempt from ingest, the delivery
// controller, `kubectl hookpost inspect` and the demo all use it. ns is the subscription's namespace, whose
// annotations say what it may reach beyond the SSRF guard (ReachOf); nil when it cannot be read.
func TargetFor(sub *hookpostv1.WebhookSubscription, ns *corev1.Namespace) delivery.Target {
	t := delivery.Target{
		Namespace:     sub.Namespace,
		Subscription:  sub.Name,
		URL:           sub.Spec.URL,
		Format:        envelope.Format(sub.Spec.PayloadFormat),
		Signatures:    SignaturesOf(sub.Spec.Signing),
		StaticHeaders: sub.Spec.Headers,
		RetryOn4xx:    sub.Spec.Retry.RetryOn4xx,
		Schedule:      scheduleDurations(sub.Spec.Retry.Schedule),
		Reach:         ReachOf(ns),
	}
	if sub.Spec.Timeout != nil {
		t.Timeout = sub.Spec.Timeout.Duration
	}
	return t
}

// SignaturesOf lists every signature a subscription's requests carry: spec.signing.scheme (with its header) first,
// then spec.signing.additional in order. The subscription controller picks the secret's form from the same list
// (signing.SecretScheme), so the secret it generates or accepts signs every one of them.
func SignaturesOf(s hookpostv1.Signing) []signing.Signature {
	sigs := make([]signing.Signature, 0, 1+len(s.Additional))
	sigs = append(sigs, signing.Signature{Scheme: signing.Scheme(s.Scheme), Header: string(s.Header)})
	for _, a := range s.Additional {
		sigs = append(sigs, signing.Signature{Scheme: signing.Scheme(a.Scheme), Header: string(a.Header)})
	}
	return sigs
}

// KeysFor returns the keys a subscription signs with at now, from the data of its signing Secret (key is
// status.signingSecretRef.key) and its status.signingKeys (recorded): the current secret, and the one under
// key+".previous" until the expiry recorded for it. A previous key the subscription controller has not recorded yet signs too:
// the Secret changes before the controller sees it, and a rotation must never leave the primary header on a key
// the receiver does not know yet. Current is "" when the key holds nothing.
func KeysFor(recorded []hookpostv1.SigningKey, data map[string][]byte, key string, now time.Time) signing.Keys {
	keys := signing.Keys{Current: string(data[key])}
	previous := string(data[key+hookpostv1.PreviousKeySuffix])
	if previous == "" || previous == keys.Current || keys.Current == "" {
		return keys
	}
	id := signing.Fingerprint(previous)
	for _, k := range recorded {
		if k.ID != id {
			continue
		}
		if k.Role == hookpostv1.SigningKeyExpired || (k.ExpiresAt != nil && !now.Before(k.ExpiresAt.Time)) {
			return keys
		}
	}
	keys.Previous = previous
	return keys
}

// EventOf returns the event a delivery carries.
func EventOf(d *hookpostv1.WebhookDelivery) envelope.Event {
	var data []byte
	if d.Spec.Data != nil {
		data = d.Spec.Data.Raw
	}
	return envelope.Event{
		ID:         d.Spec.Event.ID,
		Type:       d.Spec.Event.Type,
		TenantID:   d.Spec.Event.TenantID,
		Collection: d.Spec.Event.Collection,
		OccurredAt: d.Spec.Event.OccurredAt.Time,
		Data:       data,
	}
}

// AttemptFor is the attempt a delivery's next HTTP request is built from, signed as of now: the reconciler sends
// what it returns and `kubectl hookpost inspect` shows it, so the two cannot drift apart.
func AttemptFor(d *hookpostv1.WebhookDelivery, sub *hookpostv1.WebhookSubscription, ns *corev1.Namespace, keys signing.Keys, now time.Time) delivery.Attempt {
	return TargetFor(sub, ns).Attempt(EventOf(d), keys, d.Name, int(d.Status.Attempts)+1, d.Spec.Test, now)
}

// Gate says whether a subscription may send now and with which secret.
type Gate struct {
	// SecretRef names the Secret and key to sign with; nil when the subscription cannot send yet.
	SecretRef *hookpostv1.SecretKeyRef
	// Reason (a Delivered condition reason) and Message say why it cannot send; empty when it can.
	Reason, Message string
}

// Open reports whether the subscription may send.
func (g Gate) Open() bool { return g.SecretRef != nil }

// GateFor is the readiness and secret gate, a pure function of the subscription: a paused subscription holds its
// deliveries, and only a status that describes the current spec counts, because right after a scheme or
// secretRef change the old secret would sign wrongly (or not at all) until the subscription controller has
// caught up.
func GateFor(sub *hookpostv1.WebhookSubscription) Gate {
	if sub.Spec.Paused {
		return Gate{Reason: hookpostv1.ReasonSubscriptionPaused,
			Message: fmt.Sprintf("subscription %s is paused; the delivery is sent when it resumes", sub.Name)}
	}
	ref := sub.Status.SigningSecretRef
	ready := meta.FindStatusCondition(sub.Status.Conditions, hookpostv1.ConditionReady)
	if ref == nil || ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != sub.Generation || sub.Status.ObservedGeneration != sub.Generation {
		return Gate{Reason: hookpostv1.ReasonSubscriptionNotReady,
			Message: fmt.Sprintf("subscription %s has no usable signing secret yet (see its Ready condition); the delivery waits", sub.Name)}
	}
	return Gate{SecretRef: ref}
}

// AttemptRecord is the ledger's record of attempt number of event ev, in delivery name of a subscription in
// namespace, started at start with outcome out; the caller sets what the delivery became (Outcome, NextRetry).
func AttemptRecord(namespace, subscription, name string, ev hookpostv1.EventMeta, number int, out delivery.Outcome, start time.Time) ledger.Attempt {
	return ledger.Attempt{
		DeliveryName: name, Namespace: namespace, Subscription: subscription,
		EventID: ev.ID, EventType: ev.Type, TenantID: ev.TenantID, Collection: ev.Collection,
		Number: number, Time: start, Duration: out.Duration, StatusCode: out.StatusCode,
		ErrorClass: string(out.Class), Error: out.Error, Response: out.ResponseBody,
	}
}

// LedgerAttempt is the ledger's record of the attempt a delivery's status just recorded (status already updated):
// its number, outcome and next retry come from the status.
func LedgerAttempt(d *hookpostv1.WebhookDelivery, out delivery.Outcome, start time.Time) ledger.Attempt {
	a := AttemptRecord(d.Namespace, d.Spec.SubscriptionName, d.Name, d.Spec.Event, int(d.Status.Attempts), out, start)
	a.Test, a.Replay = d.Spec.Test, d.Status.AttemptsBeforeReplay > 0
	switch d.Status.Phase {
	case hookpostv1.DeliverySucceeded:
		a.Outcome = ledger.OutcomeSucceeded
	case hookpostv1.DeliveryFailed:
		a.Outcome = ledger.OutcomeFailed
	default:
		a.Outcome = ledger.OutcomeRetrying
		if d.Status.NextAttemptTime != nil {
			a.NextRetry = d.Status.NextAttemptTime.Time
		}
	}
	return a
}
