package controller

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
)

func TestRecordAttempt(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	policy := retryPolicy{schedule: []time.Duration{time.Minute, 5 * time.Minute}, maxRetryAfter: time.Hour}
	tests := []struct {
		name       string
		prior      hookpostv1.WebhookDeliveryStatus
		out        delivery.Outcome
		wantPhase  hookpostv1.DeliveryPhase
		wantReason string
		wantNext   time.Duration // from now; 0 means no next attempt
		wantTr     transition
	}{
		{"2xx succeeds", hookpostv1.WebhookDeliveryStatus{}, delivery.Outcome{StatusCode: 204, Class: delivery.ClassSucceeded},
			hookpostv1.DeliverySucceeded, hookpostv1.ReasonSucceeded, 0, transitionSucceeded},
		{"first failure waits schedule[0]", hookpostv1.WebhookDeliveryStatus{}, delivery.Outcome{StatusCode: 500, Class: delivery.ClassRetry},
			hookpostv1.DeliveryRetrying, hookpostv1.ReasonRetrying, time.Minute, transitionNone},
		{"second failure waits schedule[1]", hookpostv1.WebhookDeliveryStatus{Attempts: 1}, delivery.Outcome{StatusCode: 500, Class: delivery.ClassRetry},
			hookpostv1.DeliveryRetrying, hookpostv1.ReasonRetrying, 5 * time.Minute, transitionNone},
		{"a longer Retry-After wins", hookpostv1.WebhookDeliveryStatus{}, delivery.Outcome{StatusCode: 429, RetryAfter: 10 * time.Minute, Class: delivery.ClassRetry},
			hookpostv1.DeliveryRetrying, hookpostv1.ReasonRetrying, 10 * time.Minute, transitionNone},
		{"the schedule runs out", hookpostv1.WebhookDeliveryStatus{Attempts: 2}, delivery.Outcome{StatusCode: 500, Class: delivery.ClassRetry},
			hookpostv1.DeliveryFailed, hookpostv1.ReasonRetriesExhausted, 0, transitionExhausted},
		{"a replay restarts the schedule", hookpostv1.WebhookDeliveryStatus{Attempts: 3, AttemptsBeforeReplay: 3}, delivery.Outcome{StatusCode: 500, Class: delivery.ClassRetry},
			hookpostv1.DeliveryRetrying, hookpostv1.ReasonRetrying, time.Minute, transitionNone},
		{"a permanent 4xx fails at once", hookpostv1.WebhookDeliveryStatus{}, delivery.Outcome{StatusCode: 404, Class: delivery.ClassPermanent},
			hookpostv1.DeliveryFailed, hookpostv1.ReasonRejected, 0, transitionRejected},
		{"410 Gone fails at once", hookpostv1.WebhookDeliveryStatus{}, delivery.Outcome{StatusCode: 410, Class: delivery.ClassGone},
			hookpostv1.DeliveryFailed, hookpostv1.ReasonGone, 0, transitionRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, tr := recordAttempt(tc.prior, tc.out, now, now, policy)
			if st.Phase != tc.wantPhase || tr != tc.wantTr {
				t.Fatalf("phase %s transition %q, want %s %q", st.Phase, tr, tc.wantPhase, tc.wantTr)
			}
			c := meta.FindStatusCondition(st.Conditions, hookpostv1.ConditionDelivered)
			if c == nil || c.Reason != tc.wantReason {
				t.Fatalf("Delivered condition %+v, want reason %s", c, tc.wantReason)
			}
			if st.Attempts != tc.prior.Attempts+1 || st.LastAttempt == nil || st.LastAttempt.Number != st.Attempts {
				t.Fatalf("attempts %d last %+v", st.Attempts, st.LastAttempt)
			}
			switch {
			case tc.wantNext == 0 && st.NextAttemptTime != nil:
				t.Fatalf("next attempt at %v, want none", st.NextAttemptTime)
			case tc.wantNext != 0 && (st.NextAttemptTime == nil || !st.NextAttemptTime.Time.Equal(now.Add(tc.wantNext))):
				t.Fatalf("next attempt at %v, want now+%s", st.NextAttemptTime, tc.wantNext)
			}
			if tc.wantPhase.Finished() != (st.CompletionTime != nil) {
				t.Fatalf("completionTime %v for phase %s", st.CompletionTime, st.Phase)
			}
		})
	}
}

func TestRecordAttemptKeepsTheLastTenAttemptsAndBoundsText(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var st hookpostv1.WebhookDeliveryStatus
	long := strings.Repeat("é", 3000)
	for i := 1; i <= 13; i++ {
		st, _ = recordAttempt(st, delivery.Outcome{StatusCode: 500, Error: long, ResponseBody: []byte(long), Class: delivery.ClassRetry},
			now, now, retryPolicy{schedule: make([]time.Duration, 20)})
		// kubectl get -o wide and describe say how many attempts history lacks (the ledger has them).
		if want := max(0, i-maxHistory); st.AttemptsNotInHistory != int32(want) {
			t.Fatalf("after attempt %d attemptsNotInHistory = %d, want %d", i, st.AttemptsNotInHistory, want)
		}
	}
	if len(st.History) != maxHistory || st.History[0].Number != 4 || st.History[9].Number != 13 {
		t.Fatalf("history holds %d attempts from %d, want the last 10 (4..13)", len(st.History), st.History[0].Number)
	}
	if n := len([]rune(st.LastAttempt.Error)); n > 1024 {
		t.Fatalf("error kept %d characters", n)
	}
	if n := len([]rune(st.LastAttempt.ResponseBody)); n > maxResponseBodyInStatus {
		t.Fatalf("response body kept %d characters", n)
	}
}

func TestReplayResetsButKeepsHistory(t *testing.T) {
	st, _ := recordAttempt(hookpostv1.WebhookDeliveryStatus{}, delivery.Outcome{StatusCode: 200, Class: delivery.ClassSucceeded}, time.Now(), time.Now(), retryPolicy{})
	r := replay(st)
	if r.Phase != hookpostv1.DeliveryPending || r.CompletionTime != nil || r.AttemptsBeforeReplay != 1 || len(r.History) != 1 {
		t.Fatalf("replayed status %+v", r)
	}
}

// TestRateLimitedKeepsPhaseAndAttempts: a wait for the rate limit is noted without touching the delivery's phase
// (beyond Pending for one never looked at), attempts or schedule, and the note is written once per wait.
func TestRateLimitedKeepsPhaseAndAttempts(t *testing.T) {
	at := time.Date(2030, 1, 1, 12, 0, 4, 0, time.UTC)
	next := metav1.NewTime(at.Add(-3 * time.Second))
	retrying := hookpostv1.WebhookDeliveryStatus{Phase: hookpostv1.DeliveryRetrying, Attempts: 1, NextAttemptTime: &next}
	setDelivered(&retrying, metav1.ConditionFalse, hookpostv1.ReasonRetrying, "attempt 1 failed (HTTP 500)")
	tests := []struct {
		name      string
		before    hookpostv1.WebhookDeliveryStatus
		wantPhase hookpostv1.DeliveryPhase
		wantNoted bool
	}{
		{name: "a delivery never looked at", before: hookpostv1.WebhookDeliveryStatus{}, wantPhase: hookpostv1.DeliveryPending, wantNoted: true},
		{name: "a retry that became due", before: retrying, wantPhase: hookpostv1.DeliveryRetrying, wantNoted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := *tt.before.DeepCopy()
			rateLimited(&after, "limited", hookpostv1.RateLimit{PerSecond: 1, Burst: 1}, at)
			if after.Phase != tt.wantPhase || after.Attempts != tt.before.Attempts || !equalTimes(after.NextAttemptTime, tt.before.NextAttemptTime) {
				t.Errorf("status = phase %s, attempts %d, next %v; want phase %s and attempts, next attempt unchanged", after.Phase, after.Attempts, after.NextAttemptTime, tt.wantPhase)
			}
			c := meta.FindStatusCondition(after.Conditions, hookpostv1.ConditionDelivered)
			if c == nil || c.Reason != hookpostv1.ReasonRateLimited || !strings.Contains(c.Message, "spec.rateLimit (1 per second, burst 1)") || !strings.Contains(c.Message, "2030-01-01T12:00:04Z") {
				t.Errorf("Delivered condition = %+v, want reason RateLimited naming the limit and the booked time", c)
			}
			if got := rateLimitNoted(tt.before, after); got != tt.wantNoted {
				t.Errorf("rateLimitNoted(before, after) = %v, want %v", got, tt.wantNoted)
			}
			again := *after.DeepCopy()
			rateLimited(&again, "limited", hookpostv1.RateLimit{PerSecond: 1, Burst: 1}, at)
			if rateLimitNoted(after, again) {
				t.Error("the same wait noted again counts as a new note: it would be written on every look")
			}
		})
	}
}

func equalTimes(a, b *metav1.Time) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && a.Equal(b))
}
