package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

func TestReplaySelects(t *testing.T) {
	created := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(h int) *metav1.Time {
		tm := metav1.NewTime(time.Date(2025, 11, 16, h, 0, 0, 0, time.UTC))
		return &tm
	}
	d := &hookpostv1.WebhookDelivery{
		ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created.Add(-time.Hour))},
		Spec: hookpostv1.WebhookDeliverySpec{SubscriptionName: "orders", Event: hookpostv1.EventMeta{
			Type: "order.created", TenantID: "42", OccurredAt: *at(10),
		}},
		Status: hookpostv1.WebhookDeliveryStatus{Phase: hookpostv1.DeliveryFailed, Conditions: []metav1.Condition{
			{Type: hookpostv1.ConditionDelivered, Status: metav1.ConditionFalse, Reason: hookpostv1.ReasonRetriesExhausted},
		}},
	}
	tests := []struct {
		name    string
		sel     hookpostv1.ReplaySelector
		created time.Time
		want    bool
	}{
		{name: "an empty selector", created: created, want: true},
		{name: "its subscription", sel: hookpostv1.ReplaySelector{SubscriptionName: "orders"}, created: created, want: true},
		{name: "another subscription", sel: hookpostv1.ReplaySelector{SubscriptionName: "billing"}, created: created, want: false},
		{name: "its phase", sel: hookpostv1.ReplaySelector{Phases: []hookpostv1.DeliveryPhase{hookpostv1.DeliveryFailed}}, created: created, want: true},
		{name: "another phase", sel: hookpostv1.ReplaySelector{Phases: []hookpostv1.DeliveryPhase{hookpostv1.DeliverySucceeded}}, created: created, want: false},
		{name: "its reason", sel: hookpostv1.ReplaySelector{Reasons: []hookpostv1.DeliveredReason{hookpostv1.ReasonRetriesExhausted}}, created: created, want: true},
		{name: "another reason", sel: hookpostv1.ReplaySelector{Reasons: []hookpostv1.DeliveredReason{hookpostv1.ReasonGone}}, created: created, want: false},
		{name: "its event type", sel: hookpostv1.ReplaySelector{EventTypes: []string{"order.created"}}, created: created, want: true},
		{name: "another event type", sel: hookpostv1.ReplaySelector{EventTypes: []string{"order.paid"}}, created: created, want: false},
		{name: "its tenant", sel: hookpostv1.ReplaySelector{Tenants: []string{"7", "42"}}, created: created, want: true},
		{name: "another tenant", sel: hookpostv1.ReplaySelector{Tenants: []string{"7"}}, created: created, want: false},
		{name: "from its event time (inclusive)", sel: hookpostv1.ReplaySelector{From: at(10)}, created: created, want: true},
		{name: "from after its event", sel: hookpostv1.ReplaySelector{From: at(11)}, created: created, want: false},
		{name: "to its event time (exclusive)", sel: hookpostv1.ReplaySelector{To: at(10)}, created: created, want: false},
		{name: "to after its event", sel: hookpostv1.ReplaySelector{To: at(11)}, created: created, want: true},
		{name: "a delivery created after the replay", created: created.Add(-2 * time.Hour), want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := replaySelects(tc.sel, tc.created, d); got != tc.want {
				t.Fatalf("replaySelects = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReplayBudget(t *testing.T) {
	start := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		perSecond int32
		elapsed   time.Duration
		sent      int32
		wantN     int32
		wantWait  time.Duration
	}{
		{name: "the first goes at once", perSecond: 1, elapsed: 0, sent: 0, wantN: 1},
		{name: "the second waits a second", perSecond: 1, elapsed: 0, sent: 1, wantWait: time.Second},
		{name: "the second after a second", perSecond: 1, elapsed: time.Second, sent: 1, wantN: 1},
		{name: "ten at once at the start", perSecond: 10, elapsed: 0, sent: 0, wantN: 10},
		{name: "ten a second, half a second in", perSecond: 10, elapsed: 500 * time.Millisecond, sent: 12, wantN: 3},
		{name: "ten a second, all sent so far", perSecond: 10, elapsed: 250 * time.Millisecond, sent: 12, wantWait: 50 * time.Millisecond},
		{name: "after a long stop, one second's worth only", perSecond: 5, elapsed: time.Hour, sent: 0, wantN: 5},
		{name: "an unset rate is the default", perSecond: 0, elapsed: time.Second, sent: 0, wantN: hookpostv1.DefaultReplayPerSecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, wait := replayBudget(tc.perSecond, start, start.Add(tc.elapsed), tc.sent)
			if n != tc.wantN || wait != tc.wantWait {
				t.Fatalf("replayBudget = %d, %s; want %d, %s", n, wait, tc.wantN, tc.wantWait)
			}
		})
	}
}

func TestTallyReplayed(t *testing.T) {
	delivery := func(accepted bool, phase hookpostv1.DeliveryPhase, attempts int32) *hookpostv1.WebhookDelivery {
		value := hookpostv1.ReplayValue("r", "uid", 1) // each had made one attempt when the replay asked
		d := &hookpostv1.WebhookDelivery{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{hookpostv1.AnnotationReplay: value}},
			Status:     hookpostv1.WebhookDeliveryStatus{Phase: phase, Attempts: attempts},
		}
		if accepted {
			d.Annotations[hookpostv1.AnnotationReplayed] = value
		}
		return d
	}
	got := tallyReplayed([]*hookpostv1.WebhookDelivery{
		delivery(true, hookpostv1.DeliverySucceeded, 2),
		delivery(true, hookpostv1.DeliveryFailed, 3),
		delivery(false, hookpostv1.DeliveryFailed, 1), // not accepted yet: Failed is the phase before the replay
		delivery(true, hookpostv1.DeliveryFailed, 1),  // accepted, status not reset yet: still the old outcome
		delivery(true, hookpostv1.DeliveryPending, 1), // accepted, attempt not made yet
		delivery(true, hookpostv1.DeliveryRetrying, 2),
	})
	if want := (replayTally{sent: 6, succeeded: 1, failed: 1}); got != want {
		t.Fatalf("tallyReplayed = %+v, want %+v", got, want)
	}
}

func TestCompleteCondition(t *testing.T) {
	tests := []struct {
		name       string
		st         hookpostv1.WebhookReplayStatus
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{name: "nothing selected", st: hookpostv1.WebhookReplayStatus{}, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonNothingSelected},
		{name: "still sending", st: hookpostv1.WebhookReplayStatus{Selected: 5, Sent: 3, Succeeded: 3}, wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonReplaying},
		{name: "all sent, some unfinished", st: hookpostv1.WebhookReplayStatus{Selected: 5, Sent: 5, Succeeded: 4}, wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonReplaying},
		{name: "all succeeded", st: hookpostv1.WebhookReplayStatus{Selected: 5, Sent: 5, Succeeded: 5}, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonReplaySucceeded},
		{name: "some failed", st: hookpostv1.WebhookReplayStatus{Selected: 5, Sent: 5, Succeeded: 3, Failed: 2}, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonReplaySomeFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := completeCondition(tc.st, 1)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.Message == "" {
				t.Fatalf("got %+v, want %s/%s with a message", c, tc.wantStatus, tc.wantReason)
			}
		})
	}
}

func TestReplayBypassesLimits(t *testing.T) {
	created := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	running := &hookpostv1.WebhookReplay{
		ObjectMeta: metav1.ObjectMeta{Name: "r", UID: "uid", CreationTimestamp: metav1.NewTime(created)},
		Spec:       hookpostv1.WebhookReplaySpec{Selector: hookpostv1.ReplaySelector{Phases: []hookpostv1.DeliveryPhase{hookpostv1.DeliveryFailed}}},
	}
	complete := running.DeepCopy()
	complete.Status.Conditions = []metav1.Condition{{Type: hookpostv1.ConditionComplete, Status: metav1.ConditionTrue, Reason: hookpostv1.ReasonReplaySucceeded}}
	failed := func(replayed string) *hookpostv1.WebhookDelivery {
		return &hookpostv1.WebhookDelivery{
			ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created.Add(-time.Hour)), Annotations: map[string]string{hookpostv1.AnnotationReplayed: replayed}},
			Status:     hookpostv1.WebhookDeliveryStatus{Phase: hookpostv1.DeliveryFailed, Attempts: 1},
		}
	}
	succeeded := failed("")
	succeeded.Status.Phase = hookpostv1.DeliverySucceeded
	tests := []struct {
		name string
		rp   *hookpostv1.WebhookReplay
		d    *hookpostv1.WebhookDelivery
		want string
		ok   bool
	}{
		{name: "the replay's own request", rp: running, d: failed(""), want: hookpostv1.ReplayValue("r", "uid", 1), ok: true},
		{name: "a value of another object with the same name", rp: running, d: failed(""), want: hookpostv1.ReplayValue("r", "other", 1), ok: false},
		{name: "a plain value", rp: running, d: failed(""), want: "2025-11-16T10:00:00Z", ok: false},
		{name: "a completed replay", rp: complete, d: failed(""), want: hookpostv1.ReplayValue("r", "uid", 1), ok: false},
		{name: "a delivery the replay does not select", rp: running, d: succeeded, want: hookpostv1.ReplayValue("r", "uid", 1), ok: false},
		{name: "a second value of the same replay (a copy in a loop)", rp: running, d: failed(hookpostv1.ReplayValue("r", "uid", 1)), want: hookpostv1.ReplayValue("r", "uid", 2), ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := replayBypassesLimits(tc.rp, tc.d, tc.want); got != tc.ok {
				t.Fatalf("replayBypassesLimits = %v, want %v", got, tc.ok)
			}
		})
	}
}
