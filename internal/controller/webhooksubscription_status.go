package controller

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/filter"
)

// secretResolution is what resolving a subscription's signing secret found.
type secretResolution struct {
	// ref is the Secret and key in use; nil when none could be resolved.
	ref *hookpostv1.SecretKeyRef
	// generated is true when Hookpost owns the Secret.
	generated bool
	// reason and message explain a failure; reason is empty on success.
	reason, message string
	// currentID and previousID are the fingerprints (signing.Fingerprint) of the secret and, during a rotation,
	// of the one under "<key>.previous"; previousID is "" when there is none.
	currentID, previousID string
}

// keyChange is what happened to a rotation since the status was last written, for the Event it gets.
type keyChange int

const (
	keysUnchanged keyChange = iota
	// rotationStarted: a previous key appeared; both sign until its expiry.
	rotationStarted
	// rotationFinished: the previous key expired, or was removed before its expiry.
	rotationFinished
)

// signingKeysStatus computes status.signingKeys at now from what it recorded and the Secret's key ids (previousID
// "" when the Secret holds no previous key). A previous key seen for the first time signs until now + overlap;
// recording that time is what lets it expire by itself, whoever owns the Secret. A previous key past its expiry
// stays listed as Expired while the Secret still holds it, so that senders (KeysFor) keep ignoring it.
func signingKeysStatus(recorded []hookpostv1.SigningKey, currentID, previousID string, overlap time.Duration, now time.Time) ([]hookpostv1.SigningKey, keyChange) {
	keys := []hookpostv1.SigningKey{{ID: currentID, Role: hookpostv1.SigningKeyCurrent}}
	var was *hookpostv1.SigningKey
	for i := range recorded {
		if recorded[i].Role != hookpostv1.SigningKeyCurrent {
			was = &recorded[i]
		}
	}
	if previousID == "" || previousID == currentID {
		if was != nil && was.Role == hookpostv1.SigningKeyPrevious {
			return keys, rotationFinished
		}
		return keys, keysUnchanged
	}
	if was == nil || was.ID != previousID {
		expires := metav1.NewTime(now.Add(overlap).Truncate(time.Second))
		return append(keys, hookpostv1.SigningKey{ID: previousID, Role: hookpostv1.SigningKeyPrevious, ExpiresAt: &expires}), rotationStarted
	}
	prev := *was
	if prev.Role == hookpostv1.SigningKeyPrevious && prev.ExpiresAt != nil && !now.Before(prev.ExpiresAt.Time) {
		prev.Role = hookpostv1.SigningKeyExpired
		return append(keys, prev), rotationFinished
	}
	return append(keys, prev), keysUnchanged
}

// invalidHeader names the first static header whose value HTTP cannot carry, "" when all are fine. Admission
// bounds names and lengths; values with control characters are caught here, so the subscription says why it
// cannot deliver instead of failing every attempt.
func invalidHeader(headers map[string]string) string {
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !httpguts.ValidHeaderFieldValue(headers[k]) {
			return k
		}
	}
	return ""
}

// maxFilterMessage bounds the compiler's message quoted in the Ready condition: it quotes the expression, which
// may be up to 4096 bytes long.
const maxFilterMessage = 1024

// invalidFilter says why spec.filter.expression cannot filter, "" when it can (or is not set). A CRD validation
// rule cannot compile a user's CEL expression, so the controller does, with the compiler ingest uses.
func invalidFilter(f *hookpostv1.EventFilter) string {
	if f == nil || f.Expression == "" {
		return ""
	}
	if _, err := filter.Compile(f.Expression); err != nil {
		return fmt.Sprintf("spec.filter.expression is invalid, so no event is delivered until it is fixed (see docs/subscriptions.md, Content filters): %s",
			truncateRunes(err.Error(), maxFilterMessage))
	}
	return ""
}

// invalidOrderingKey says why spec.ordering.key cannot key events, "" when it can (or is not set); like
// invalidFilter, with the compiler ingest uses.
func invalidOrderingKey(o *hookpostv1.Ordering) string {
	if o == nil {
		return ""
	}
	if _, err := filter.CompileKey(o.Key); err != nil {
		return fmt.Sprintf("spec.ordering.key is invalid, so every event gets the key \"\" and its deliveries wait until it is fixed (see docs/subscriptions.md, Ordered delivery): %s",
			truncateRunes(err.Error(), maxFilterMessage))
	}
	return ""
}

// readyCondition computes the subscription's Ready condition from its signing secret and its spec.tls material;
// gone says its endpoint answered 410 Gone under spec.circuitBreaker.disableOnGone (now, or as the current Ready
// condition, of this generation, records).
func readyCondition(sub *hookpostv1.WebhookSubscription, secret secretResolution, material TLSMaterial, gone bool) metav1.Condition {
	c := metav1.Condition{Type: hookpostv1.ConditionReady, ObservedGeneration: sub.Generation}
	bad := invalidHeader(sub.Spec.Headers)
	badFilter := invalidFilter(sub.Spec.Filter)
	badKey := invalidOrderingKey(sub.Spec.Ordering)
	switch {
	case gone && sub.Spec.CircuitBreaker.DisableOnGone:
		c.Status, c.Reason = metav1.ConditionFalse, hookpostv1.ReasonEndpointGone
		c.Message = "the endpoint answered 410 Gone and spec.circuitBreaker.disableOnGone is true: deliveries wait; change the spec (fix spec.url, or set spec.paused to true and back to false) to send them"
	case bad != "":
		c.Status, c.Reason = metav1.ConditionFalse, hookpostv1.ReasonInvalidHeader
		c.Message = fmt.Sprintf("spec.headers[%q] holds a control character such as CR or LF, which HTTP headers cannot carry; remove it", bad)
	case badFilter != "":
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, hookpostv1.ReasonInvalidFilter, badFilter
	case badKey != "":
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, hookpostv1.ReasonInvalidOrderingKey, badKey
	case secret.reason != "":
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, secret.reason, secret.message
	case material.Reason != "":
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, material.Reason, material.Message
	case sub.Spec.Paused:
		c.Status, c.Reason = metav1.ConditionFalse, hookpostv1.ReasonPaused
		c.Message = "spec.paused is true: deliveries wait and are sent when it is set to false"
	case secret.generated:
		c.Status, c.Reason = metav1.ConditionTrue, hookpostv1.ReasonSecretGenerated
		c.Message = fmt.Sprintf("signing with the generated secret in Secret %s, key %s", secret.ref.Name, secret.ref.Key)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, hookpostv1.ReasonSecretReady
		c.Message = fmt.Sprintf("signing with Secret %s, key %s", secret.ref.Name, secret.ref.Key)
	}
	if tls := TLSSummary(sub.Spec.TLS); c.Status == metav1.ConditionTrue && tls != "" {
		c.Message += "; " + tls
	}
	return c
}

// TLSSummary says which TLS material spec.tls connects with ("" for none), for the Ready message and
// `kubectl hookpost inspect`.
func TLSSummary(t *hookpostv1.SubscriptionTLS) string {
	if t == nil {
		return ""
	}
	var parts []string
	if ref := t.ClientCertificateRef; ref != nil {
		parts = append(parts, fmt.Sprintf("client certificate from Secret %s", ref.Name))
	}
	if ref := t.CABundleRef; ref != nil {
		kind, name := "ConfigMap", ref.ConfigMapName
		if ref.SecretName != "" {
			kind, name = "Secret", ref.SecretName
		}
		parts = append(parts, fmt.Sprintf("receiver verified with the CA bundle in %s %s, key %s", kind, name, caBundleKey(ref)))
	}
	return strings.Join(parts, "; ")
}

// deliveryStats are the subscription's counters and times, computed from its retained deliveries.
type deliveryStats struct {
	succeeded, failed, pending int64
	lastDelivery, lastSuccess  *metav1.Time
	lastFailure                *metav1.Time
	consecutiveFailures        int32
}

// computeDeliveryStats summarises deliveries. Times never move backwards: pruning an old delivery must not make
// lastSuccessTime older than it was, so the previous status is folded in.
func computeDeliveryStats(prev hookpostv1.WebhookSubscriptionStatus, deliveries []hookpostv1.WebhookDelivery) deliveryStats {
	s := deliveryStats{lastDelivery: prev.LastDeliveryTime, lastSuccess: prev.LastSuccessTime, lastFailure: prev.LastFailureTime}
	var failedAttempts []time.Time
	for i := range deliveries {
		d := &deliveries[i]
		switch d.Status.Phase {
		case hookpostv1.DeliverySucceeded:
			s.succeeded++
		case hookpostv1.DeliveryFailed:
			s.failed++
		default:
			s.pending++
		}
		for j := range d.Status.History {
			a := &d.Status.History[j]
			s.lastDelivery = later(s.lastDelivery, &a.Time)
			if attemptSucceeded(a) {
				s.lastSuccess = later(s.lastSuccess, &a.Time)
			} else {
				s.lastFailure = later(s.lastFailure, &a.Time)
				failedAttempts = append(failedAttempts, a.Time.Time)
			}
		}
	}
	for _, t := range failedAttempts {
		if s.lastSuccess == nil || t.After(s.lastSuccess.Time) {
			s.consecutiveFailures++
		}
	}
	// Pruned deliveries and trimmed histories take failed attempts with them: without a new success the streak
	// must not shrink.
	if s.lastSuccess.Equal(prev.LastSuccessTime) && prev.ConsecutiveFailures > s.consecutiveFailures {
		s.consecutiveFailures = prev.ConsecutiveFailures
	}
	return s
}

func attemptSucceeded(a *hookpostv1.AttemptRecord) bool {
	return a.Error == "" && a.StatusCode >= 200 && a.StatusCode < 300
}

func later(a, b *metav1.Time) *metav1.Time {
	if a == nil || (b != nil && b.After(a.Time)) {
		if b == nil {
			return nil
		}
		t := *b
		return &t
	}
	return a
}

// applyDeliveryStats writes stats into the status, counting deliveries already pruned and those that succeeded
// without an object.
func applyDeliveryStats(st *hookpostv1.WebhookSubscriptionStatus, s deliveryStats) {
	st.Delivered = st.PrunedSucceeded + st.DeliveredWithoutObject + s.succeeded
	st.Failed = st.PrunedFailed + s.failed
	st.Pending = s.pending
	st.LastDeliveryTime, st.LastSuccessTime, st.LastFailureTime = s.lastDelivery, s.lastSuccess, s.lastFailure
	st.ConsecutiveFailures = s.consecutiveFailures
}

// deliveriesToPrune returns the finished deliveries beyond the history limits, oldest first.
func deliveriesToPrune(deliveries []hookpostv1.WebhookDelivery, limits hookpostv1.HistoryLimits) (succeeded, failed []hookpostv1.WebhookDelivery) {
	var ok, bad []hookpostv1.WebhookDelivery
	for _, d := range deliveries {
		switch d.Status.Phase {
		case hookpostv1.DeliverySucceeded:
			ok = append(ok, d)
		case hookpostv1.DeliveryFailed:
			bad = append(bad, d)
		}
	}
	return oldestBeyond(ok, limitOr(limits.SucceededLimit, 100)), oldestBeyond(bad, limitOr(limits.FailedLimit, 1000))
}

// keptWhenPruned reports whether the ledger keeps a pruned delivery's event for a WebhookReplay: every Failed one
// (the dead letters), and a Succeeded one that took more than one attempt. A success at its first attempt is left
// out: there can be one per event (the newest fast-path successes are written as objects every flush, and every
// event has an object with --first-attempt=false), so keeping them would put an API read and a ledger write on the
// hot path. The source still holds those events (spec.source).
func keptWhenPruned(d *hookpostv1.WebhookDelivery) bool {
	return d.Status.Phase == hookpostv1.DeliveryFailed || (d.Status.Phase == hookpostv1.DeliverySucceeded && d.Status.Attempts > 1)
}

func limitOr(v *int32, def int) int {
	if v == nil {
		return def
	}
	return int(*v)
}

func oldestBeyond(ds []hookpostv1.WebhookDelivery, limit int) []hookpostv1.WebhookDelivery {
	if len(ds) <= limit {
		return nil
	}
	sort.SliceStable(ds, func(i, j int) bool { return finishedAt(&ds[i]).Before(finishedAt(&ds[j])) })
	return ds[:len(ds)-limit]
}

func finishedAt(d *hookpostv1.WebhookDelivery) time.Time {
	if d.Status.CompletionTime != nil {
		return d.Status.CompletionTime.Time
	}
	return d.CreationTimestamp.Time
}

// tenantsCondition computes the TenantsGranted condition of a subscription whose namespace has grant, under
// tenant isolation. It is False when events the subscription asks for would not reach it: the namespace is
// granted nothing, or spec.filter.tenants names tenants it is not granted.
func tenantsCondition(sub *hookpostv1.WebhookSubscription, grant TenantGrant) metav1.Condition {
	c := metav1.Condition{Type: hookpostv1.ConditionTenantsGranted, ObservedGeneration: sub.Generation}
	fix := fmt.Sprintf("a cluster admin grants them with `kubectl annotate namespace %s %s=<tenant ids, comma-separated, or *>`",
		sub.Namespace, hookpostv1.AnnotationTenants)
	if !grant.Annotated || (!grant.All && len(grant.Tenants) == 0) {
		c.Status, c.Reason = metav1.ConditionFalse, hookpostv1.ReasonNoTenantGrant
		c.Message = fmt.Sprintf("tenant isolation is on and namespace %s is granted no tenants, so this subscription receives no events; %s",
			sub.Namespace, fix)
		return c
	}
	var missing []string
	if f := sub.Spec.Filter; f != nil && !grant.All {
		for _, t := range f.Tenants {
			if !grant.Allows(t) {
				missing = append(missing, t)
			}
		}
	}
	switch {
	case len(missing) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, hookpostv1.ReasonTenantNotGranted
		c.Message = fmt.Sprintf("spec.filter.tenants names %s, which namespace %s is not granted: those events are not delivered here; %s",
			strings.Join(missing, ", "), sub.Namespace, fix)
	case grant.All:
		c.Status, c.Reason = metav1.ConditionTrue, hookpostv1.ReasonTenantsGranted
		c.Message = fmt.Sprintf("namespace %s is granted every tenant", sub.Namespace)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, hookpostv1.ReasonTenantsGranted
		c.Message = fmt.Sprintf("namespace %s is granted tenants %s; events without a tenant are not delivered here",
			sub.Namespace, strings.Join(grant.names(), ", "))
	}
	return c
}

// goneRecorded reports whether the subscription's Ready condition records a 410 Gone for its current generation.
func goneRecorded(sub *hookpostv1.WebhookSubscription) bool {
	c := meta.FindStatusCondition(sub.Status.Conditions, hookpostv1.ConditionReady)
	return c != nil && c.Reason == hookpostv1.ReasonEndpointGone && c.ObservedGeneration == sub.Generation
}

// circuitCondition computes the CircuitOpen condition from the subscription's circuit; nil leaves it absent (a
// circuit that never opened). prev is the condition the subscription carries now.
func circuitCondition(sub *hookpostv1.WebhookSubscription, c delivery.Circuit, prev *metav1.Condition) *metav1.Condition {
	if c.State == delivery.CircuitClosed {
		if prev == nil || prev.Status != metav1.ConditionTrue {
			return prev
		}
		msg := "a probe attempt succeeded; the deliveries that waited are sent again"
		if d := sub.Spec.CircuitBreaker.DrainPerSecond; d != nil && *d > 0 {
			msg += fmt.Sprintf(", at most %d per second (spec.circuitBreaker.drainPerSecond)", *d)
		}
		return &metav1.Condition{Type: hookpostv1.ConditionCircuitOpen, Status: metav1.ConditionFalse,
			Reason: hookpostv1.ReasonCircuitClosed, Message: msg, ObservedGeneration: sub.Generation}
	}
	msg := fmt.Sprintf("circuit open since %s after %s: deliveries wait, spending no retry budget; ", c.Since.UTC().Format(time.RFC3339), c.Reason)
	if c.State == delivery.CircuitHalfOpen {
		msg += "a probe attempt tests the endpoint now"
	} else {
		msg += fmt.Sprintf("the next probe attempt is at %s", c.Until.UTC().Format(time.RFC3339))
	}
	return &metav1.Condition{Type: hookpostv1.ConditionCircuitOpen, Status: metav1.ConditionTrue,
		Reason: hookpostv1.ReasonCircuitOpened, Message: msg, ObservedGeneration: sub.Generation}
}
