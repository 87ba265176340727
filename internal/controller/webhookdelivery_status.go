package controller

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/backoff"
	"github.com/hookpost/hookpost/internal/delivery"
)

// maxHistory is how many attempts a delivery's status keeps.
const maxHistory = 10

// maxResponseBodyInStatus bounds the response body kept per attempt (the API allows 4096 characters; escaped
// binary can grow, so cut by runes after the sender's 1 KiB byte limit).
const maxResponseBodyInStatus = 1024

// transition names a change of phase worth an Event.
type transition string

const (
	transitionNone      transition = ""
	transitionSucceeded transition = "Succeeded"
	transitionExhausted transition = "RetriesExhausted"
	transitionRejected  transition = "Rejected"
)

// retryPolicy is the part of a subscription that decides what happens after a failed attempt.
type retryPolicy struct {
	schedule      []time.Duration
	maxRetryAfter time.Duration
}

// recordAttempt returns the delivery status after an attempt that started at start and produced out, and the
// transition it made. It is a pure function of its inputs.
func recordAttempt(st hookpostv1.WebhookDeliveryStatus, out delivery.Outcome, start, now time.Time, policy retryPolicy) (hookpostv1.WebhookDeliveryStatus, transition) {
	st.Attempts++
	rec := hookpostv1.AttemptRecord{
		Number:       st.Attempts,
		Time:         metav1.NewTime(start),
		Duration:     metav1.Duration{Duration: out.Duration.Round(time.Millisecond)},
		StatusCode:   int32(out.StatusCode),
		Error:        truncateRunes(out.Error, 1024),
		ResponseBody: truncateRunes(string(out.ResponseBody), maxResponseBodyInStatus),
	}
	st.LastAttempt = &rec
	st.History = append(st.History, rec)
	if n := len(st.History); n > maxHistory {
		st.History = append([]hookpostv1.AttemptRecord(nil), st.History[n-maxHistory:]...)
	}
	st.AttemptsNotInHistory = st.Attempts - int32(len(st.History))
	st.NextAttemptTime = nil
	done := metav1.NewTime(now)

	switch out.Class {
	case delivery.ClassSucceeded:
		st.Phase, st.CompletionTime = hookpostv1.DeliverySucceeded, &done
		setDelivered(&st, metav1.ConditionTrue, hookpostv1.ReasonSucceeded, fmt.Sprintf("attempt %d: receiver answered %d", rec.Number, rec.StatusCode))
		return st, transitionSucceeded
	case delivery.ClassGone:
		st.Phase, st.CompletionTime = hookpostv1.DeliveryFailed, &done
		setDelivered(&st, metav1.ConditionFalse, hookpostv1.ReasonGone, fmt.Sprintf("attempt %d: receiver answered 410 Gone; not retried", rec.Number))
		return st, transitionRejected
	case delivery.ClassPermanent:
		st.Phase, st.CompletionTime = hookpostv1.DeliveryFailed, &done
		setDelivered(&st, metav1.ConditionFalse, hookpostv1.ReasonRejected, fmt.Sprintf("attempt %d failed and is not retried: %s", rec.Number, attemptSummary(rec)))
		return st, transitionRejected
	}
	runAttempt := int(st.Attempts - st.AttemptsBeforeReplay)
	due, ok := backoff.Next(policy.schedule, runAttempt, now, out.RetryAfter, policy.maxRetryAfter)
	if !ok {
		st.Phase, st.CompletionTime = hookpostv1.DeliveryFailed, &done
		setDelivered(&st, metav1.ConditionFalse, hookpostv1.ReasonRetriesExhausted, fmt.Sprintf("all %d attempts failed; last: %s", runAttempt, attemptSummary(rec)))
		return st, transitionExhausted
	}
	next := metav1.NewTime(due)
	st.Phase, st.NextAttemptTime = hookpostv1.DeliveryRetrying, &next
	setDelivered(&st, metav1.ConditionFalse, hookpostv1.ReasonRetrying, fmt.Sprintf("attempt %d failed (%s); next attempt at %s", rec.Number, attemptSummary(rec), due.UTC().Format(time.RFC3339)))
	return st, transitionNone
}

// invalidRequest fails a delivery whose request cannot be built (its event cannot be encoded or signed).
func invalidRequest(st hookpostv1.WebhookDeliveryStatus, err error, now time.Time) hookpostv1.WebhookDeliveryStatus {
	done := metav1.NewTime(now)
	st.Phase, st.CompletionTime, st.NextAttemptTime = hookpostv1.DeliveryFailed, &done, nil
	setDelivered(&st, metav1.ConditionFalse, hookpostv1.ReasonInvalidRequest, truncateRunes(fmt.Sprintf("cannot build the request, nothing was sent: %v", err), 1024))
	return st
}

// replay resets a delivery so it is sent again now, keeping its history.
func replay(st hookpostv1.WebhookDeliveryStatus) hookpostv1.WebhookDeliveryStatus {
	st.Phase = hookpostv1.DeliveryPending
	st.NextAttemptTime, st.CompletionTime = nil, nil
	st.AttemptsBeforeReplay = st.Attempts
	setDelivered(&st, metav1.ConditionFalse, hookpostv1.ReasonPending, "replay requested; sending again")
	return st
}

// waiting sets the Delivered condition for a delivery that cannot be attempted yet, keeping its phase.
func waiting(st *hookpostv1.WebhookDeliveryStatus, reason, message string) {
	if st.Phase == "" {
		st.Phase = hookpostv1.DeliveryPending
	}
	setDelivered(st, metav1.ConditionFalse, reason, message)
}

// rateLimited notes in st that the delivery's attempt waits for its subscription's rate limit until at, keeping
// its phase and attempts: waiting spends no retry.
func rateLimited(st *hookpostv1.WebhookDeliveryStatus, subscription string, limit hookpostv1.RateLimit, at time.Time) {
	waiting(st, hookpostv1.ReasonRateLimited, fmt.Sprintf("subscription %s's spec.rateLimit (%d per second, burst %d) is used up by the deliveries ahead of this one; its attempt is booked for %s and spends no retry",
		subscription, limit.PerSecond, limit.Burst, at.UTC().Format(time.RFC3339)))
}

// rateLimitNoted reports whether after notes a rate limit wait that before did not: that note is written once per
// wait, not on every look.
func rateLimitNoted(before, after hookpostv1.WebhookDeliveryStatus) bool {
	reason := func(st hookpostv1.WebhookDeliveryStatus) string {
		if c := meta.FindStatusCondition(st.Conditions, hookpostv1.ConditionDelivered); c != nil {
			return c.Reason
		}
		return ""
	}
	return reason(after) == hookpostv1.ReasonRateLimited && reason(before) != hookpostv1.ReasonRateLimited
}

func setDelivered(st *hookpostv1.WebhookDeliveryStatus, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: hookpostv1.ConditionDelivered, Status: status, Reason: reason, Message: message})
}

func attemptSummary(rec hookpostv1.AttemptRecord) string {
	switch {
	case rec.Error != "":
		return rec.Error
	case rec.StatusCode != 0:
		return fmt.Sprintf("HTTP %d", rec.StatusCode)
	default:
		return "no response"
	}
}

func truncateRunes(s string, max int) string {
	if len(s) <= max {
		return s
	}
	r := []rune(s)
	if len(r) > max {
		r = r[:max]
	}
	return string(r)
}

// scheduleDurations converts the API's schedule into durations, falling back to the default schedule.
func scheduleDurations(s []metav1.Duration) []time.Duration {
	if len(s) == 0 {
		return backoff.DefaultSchedule
	}
	out := make([]time.Duration, len(s))
	for i, d := range s {
		out[i] = d.Duration
	}
	return out
}
