package controller

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// replaySelects reports whether spec's selector picks d, a delivery not yet replayed by the WebhookReplay created
// at created. Deliveries created after the replay are left out, so a bulk replay is a snapshot of what existed
// when it was asked for (both times are the API server's).
func replaySelects(sel hookpostv1.ReplaySelector, created time.Time, d *hookpostv1.WebhookDelivery) bool {
	if d.CreationTimestamp.Time.After(created) {
		return false
	}
	if sel.SubscriptionName != "" && d.Spec.SubscriptionName != sel.SubscriptionName {
		return false
	}
	if len(sel.Phases) > 0 && !slices.Contains(sel.Phases, d.Status.Phase) {
		return false
	}
	if len(sel.Reasons) > 0 {
		c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered)
		if c == nil || !slices.Contains(sel.Reasons, hookpostv1.DeliveredReason(c.Reason)) {
			return false
		}
	}
	if len(sel.EventTypes) > 0 && !slices.Contains(sel.EventTypes, d.Spec.Event.Type) {
		return false
	}
	if len(sel.Tenants) > 0 && !slices.Contains(sel.Tenants, d.Spec.Event.TenantID) {
		return false
	}
	occurred := d.Spec.Event.OccurredAt.Time
	if sel.From != nil && occurred.Before(sel.From.Time) {
		return false
	}
	if sel.To != nil && !occurred.Before(sel.To.Time) {
		return false
	}
	return true
}

// replayBypassesLimits reports whether want, the replay value set on d, is rp's own request to replay d, which the
// delivery controller then sends without the replay limits: the value names rp (name and uid), rp is still
// running, rp selects d, and d's last accepted replay was not already rp's. Someone who may patch deliveries but
// not create WebhookReplays can copy a running replay's value onto a delivery it selects, but gets at most the
// one replay the WebhookReplay would have sent anyway; every other value goes through the limits.
func replayBypassesLimits(rp *hookpostv1.WebhookReplay, d *hookpostv1.WebhookDelivery, want string) bool {
	name, uid, _, ok := hookpostv1.ParseReplayValue(want)
	if !ok || name != rp.Name || uid != string(rp.UID) || meta.IsStatusConditionTrue(rp.Status.Conditions, hookpostv1.ConditionComplete) {
		return false
	}
	if n, u, _, ok := hookpostv1.ParseReplayValue(d.Annotations[hookpostv1.AnnotationReplayed]); ok && n == name && u == uid {
		return false
	}
	return replaySelects(rp.Spec.Selector, rp.CreationTimestamp.Time, d)
}

// sortOldestEventFirst orders deliveries by event time, then name, so a replay sends in the order events
// happened and a limit keeps the oldest.
func sortOldestEventFirst(ds []*hookpostv1.WebhookDelivery) {
	slices.SortFunc(ds, func(a, b *hookpostv1.WebhookDelivery) int {
		if c := a.Spec.Event.OccurredAt.Time.Compare(b.Spec.Event.OccurredAt.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// replayTally counts the deliveries a WebhookReplay has sent (their AnnotationReplay value names it) and how the
// ones whose replay attempt was made ended.
type replayTally struct{ sent, succeeded, failed int32 }

// tallyReplayed counts sent, the deliveries whose replay value names the replay, by how they ended after it.
func tallyReplayed(sent []*hookpostv1.WebhookDelivery) replayTally {
	t := replayTally{sent: int32(len(sent))}
	for _, d := range sent {
		value := d.Annotations[hookpostv1.AnnotationReplay]
		_, _, before, _ := hookpostv1.ParseReplayValue(value)
		// Replayed == value: the delivery controller accepted the replay; more attempts than when the replay was
		// asked for: its attempt was made, so a finished phase is the replay's outcome, not the one before it (the
		// controller marks a replay accepted before it resets the status).
		if d.Annotations[hookpostv1.AnnotationReplayed] != value || d.Status.Attempts <= before {
			continue
		}
		switch d.Status.Phase {
		case hookpostv1.DeliverySucceeded:
			t.succeeded++
		case hookpostv1.DeliveryFailed:
			t.failed++
		}
	}
	return t
}

// replayBudget is how many deliveries a replay started at start, declared at perSecond and having sent sent, may
// send at now, and, when none, how long until the next one: a token bucket holding one second's worth, full at
// the start. It is computed from start and sent (counted from the deliveries), so it survives a restart, and a
// replay that stood still (the operator was down) sends no more than one second's worth at once.
func replayBudget(perSecond int32, start, now time.Time, sent int32) (n int32, wait time.Duration) {
	if perSecond <= 0 {
		perSecond = hookpostv1.DefaultReplayPerSecond
	}
	elapsed := max(now.Sub(start), 0)
	allowed := int64(math.Floor(elapsed.Seconds()*float64(perSecond))) + int64(perSecond)
	if n := allowed - int64(sent); n > 0 {
		return int32(min(n, int64(perSecond))), 0
	}
	// The next delivery may go once elapsed*perSecond reaches sent-perSecond+1.
	next := start.Add(time.Duration(math.Ceil(float64(sent-perSecond+1) / float64(perSecond) * float64(time.Second))))
	return 0, max(next.Sub(now), time.Millisecond)
}

// completeCondition is a WebhookReplay's Complete condition for its status counters.
func completeCondition(st hookpostv1.WebhookReplayStatus, generation int64) metav1.Condition {
	c := metav1.Condition{Type: hookpostv1.ConditionComplete, ObservedGeneration: generation}
	switch {
	case st.Selected == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, hookpostv1.ReasonNothingSelected, "no delivery matched spec.selector when the replay started"
	case st.Sent < st.Selected || st.Succeeded+st.Failed < st.Sent:
		c.Status, c.Reason = metav1.ConditionFalse, hookpostv1.ReasonReplaying
		c.Message = fmt.Sprintf("%d of %d deliveries sent, %d finished", st.Sent, st.Selected, st.Succeeded+st.Failed)
	case st.Failed > 0:
		c.Status, c.Reason = metav1.ConditionTrue, hookpostv1.ReasonReplaySomeFailed
		c.Message = fmt.Sprintf("%d deliveries replayed: %d succeeded, %d failed again (kubectl hookpost dead-letters lists them)", st.Sent, st.Succeeded, st.Failed)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, hookpostv1.ReasonReplaySucceeded
		c.Message = fmt.Sprintf("%d deliveries replayed, all succeeded", st.Sent)
	}
	return c
}
