package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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
		Breaker:       breakerPolicy(sub.Spec.CircuitBreaker),
	}
	if sub.Spec.Timeout != nil {
		t.Timeout = sub.Spec.Timeout.Duration
	}
	if l := sub.Spec.RateLimit; l != nil {
		t.Rate = delivery.RateLimit{PerSecond: int(l.PerSecond), Burst: int(l.Burst)}
	}
	return t
}

// breakerPolicy translates spec.circuitBreaker; a field the API server did not default (an object built in
// memory) turns its rule off.
func breakerPolicy(cb hookpostv1.CircuitBreaker) delivery.BreakerPolicy {
	p := delivery.BreakerPolicy{FailureRatePercent: int(cb.FailureRatePercent), MinAttempts: int(cb.MinAttempts), DisableOnGone: cb.DisableOnGone}
	if cb.ConsecutiveFailures != nil {
		p.ConsecutiveFailures = int(*cb.ConsecutiveFailures)
	}
	if cb.Window != nil {
		p.Window = cb.Window.Duration
	}
	if cb.OpenFor != nil {
		p.OpenFor = cb.OpenFor.Duration
	}
	if cb.MaxOpenFor != nil {
		p.MaxOpenFor = cb.MaxOpenFor.Duration
	}
	if cb.DrainPerSecond != nil {
		p.DrainPerSecond = int(*cb.DrainPerSecond)
	}
	return p
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
	// TLS is the subscription's spec.tls, whose material (Secrets.ReadTLS) is read for each attempt, like the
	// signing secret; nil for none.
	TLS *hookpostv1.SubscriptionTLS
	// SigningKeys is the subscription's status.signingKeys, which says until when a previous key signs.
	SigningKeys []hookpostv1.SigningKey
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
	if ready != nil && ready.Reason == hookpostv1.ReasonEndpointGone && ready.ObservedGeneration == sub.Generation {
		return Gate{Reason: hookpostv1.ReasonSubscriptionNotReady,
			Message: fmt.Sprintf("subscription %s is disabled: its endpoint answered 410 Gone (spec.circuitBreaker.disableOnGone); the delivery waits until its spec changes", sub.Name)}
	}
	if ref == nil || ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != sub.Generation || sub.Status.ObservedGeneration != sub.Generation {
		return Gate{Reason: hookpostv1.ReasonSubscriptionNotReady,
			Message: fmt.Sprintf("subscription %s has no usable signing secret yet (see its Ready condition); the delivery waits", sub.Name)}
	}
	return Gate{SecretRef: ref, TLS: sub.Spec.TLS, SigningKeys: sub.Status.SigningKeys}
}

// Credentials reads what an attempt the gate let through is made with, as it is now: the signing keys (the
// current secret, and the previous one during a rotation's overlap, which status.signingKeys bounds) and the TLS
// material. Both attempt paths call it for each attempt, so a rotated Secret counts from the next attempt on.
// waiting is non-empty, saying why, when the subscription cannot send after all (a Secret emptied or deleted
// since Ready was last computed; the subscription controller is about to say so in Ready).
func (g Gate) Credentials(ctx context.Context, secrets *Secrets, namespace string, now time.Time) (keys signing.Keys, tls delivery.ClientTLS, waiting string, err error) {
	if keys, err = secrets.Keys(ctx, namespace, g.SecretRef, g.SigningKeys, now); err != nil {
		return signing.Keys{}, delivery.ClientTLS{}, "", fmt.Errorf("read signing secret: %w", err)
	}
	if keys.Current == "" {
		return signing.Keys{}, delivery.ClientTLS{}, fmt.Sprintf("Secret %s has no data under key %q", g.SecretRef.Name, g.SecretRef.Key), nil
	}
	material, err := secrets.ReadTLS(ctx, namespace, g.TLS)
	if err != nil {
		return signing.Keys{}, delivery.ClientTLS{}, "", fmt.Errorf("read spec.tls: %w", err)
	}
	if material.Reason != "" {
		return signing.Keys{}, delivery.ClientTLS{}, material.Message, nil
	}
	return keys, material.TLS, "", nil
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

// PrunedOf is what the ledger keeps of a finished delivery pruned beyond its subscription's history limits: its
// event, and how it ended, so a WebhookReplay can select it and make it again (DeliveryOfPruned). d must carry its
// data (not a cached object whose data the cache dropped).
func PrunedOf(d *hookpostv1.WebhookDelivery) ledger.Pruned {
	ev := EventOf(d)
	p := ledger.Pruned{
		Namespace: d.Namespace, Subscription: d.Spec.SubscriptionName, DeliveryName: d.Name,
		EventID: ev.ID, EventType: ev.Type, TenantID: ev.TenantID, Collection: ev.Collection, OccurredAt: ev.OccurredAt,
		Data: ev.Data, Phase: string(d.Status.Phase), Created: d.CreationTimestamp.Time,
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered); c != nil {
		p.Reason = c.Reason
	}
	return p
}

// DeliveryOfPruned makes again, sealed, the delivery p was kept from, for the subscription whose UID is uid. The
// status and creation time it is given are the pruned delivery's, for a WebhookReplay's selector to read; the API
// server keeps neither when the object is created.
func DeliveryOfPruned(p ledger.Pruned, uid types.UID, sealer *Sealer) *hookpostv1.WebhookDelivery {
	d := NewDelivery(p.Namespace, p.Subscription, uid, hookpostv1.EventMeta{
		ID: p.EventID, Type: p.EventType, TenantID: p.TenantID, Collection: p.Collection, OccurredAt: metav1.NewTime(p.OccurredAt),
	}, p.Data, sealer)
	d.CreationTimestamp = metav1.NewTime(p.Created)
	d.Status.Phase = hookpostv1.DeliveryPhase(p.Phase)
	if p.Reason != "" {
		status := metav1.ConditionFalse
		if d.Status.Phase == hookpostv1.DeliverySucceeded {
			status = metav1.ConditionTrue
		}
		d.Status.Conditions = []metav1.Condition{{Type: hookpostv1.ConditionDelivered, Status: status, Reason: p.Reason}}
	}
	return d
}
