package ingest

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

func unfinishedDelivery(sub, name string, phase hookpostv1.DeliveryPhase) *hookpostv1.WebhookDelivery {
	return &hookpostv1.WebhookDelivery{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: hookpostv1.WebhookDeliverySpec{SubscriptionName: sub}, Status: hookpostv1.WebhookDeliveryStatus{Phase: phase}}
}

// TestUnfinishedCountsWhatTheCacheShowsAndReservations: the count follows the cache's notifications (finished
// and deleted deliveries leave it, repeated ones count once), a reservation counts until it is created (then it
// stays) or released, and one the cache never showed ends after reservationTTL.
func TestUnfinishedCountsWhatTheCacheShowsAndReservations(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	u := NewUnfinished(clk)
	a := &Subscription{Namespace: "ns", Name: "a"}
	b := &Subscription{Namespace: "ns", Name: "b"}

	u.observe(unfinishedDelivery("a", "a-1", ""), false)
	u.observe(unfinishedDelivery("a", "a-1", hookpostv1.DeliveryPending), false)
	u.observe(unfinishedDelivery("a", "a-2", hookpostv1.DeliveryRetrying), false)
	u.observe(unfinishedDelivery("b", "b-1", hookpostv1.DeliveryRetrying), false)
	if got := u.Count(a); got != 2 {
		t.Fatalf("a counts %d, want 2 (a repeated notification counts once)", got)
	}
	u.observe(unfinishedDelivery("a", "a-2", hookpostv1.DeliverySucceeded), false)
	u.observe(toolscache.DeletedFinalStateUnknown{Obj: unfinishedDelivery("b", "b-1", hookpostv1.DeliveryRetrying)}, true)
	if u.Count(a) != 1 || u.Count(b) != 0 || u.Total() != 1 {
		t.Fatalf("after a success and a deletion: a %d, b %d, total %d; want 1, 0, 1", u.Count(a), u.Count(b), u.Total())
	}

	if !u.reserve(a, "a-3", 2, 10) {
		t.Fatal("a reservation below the cap was refused")
	}
	if u.reserve(a, "a-4", 2, 10) {
		t.Fatal("a reservation at the subscription's cap was admitted")
	}
	if !u.reserve(a, "a-1", 2, 10) {
		t.Fatal("a delivery already counted was refused")
	}
	if u.reserve(b, "b-2", 5, 2) {
		t.Fatal("a reservation at the cluster-wide cap was admitted")
	}
	u.release(a, "a-3")
	u.release(a, "a-1") // shown by the cache: kept
	if u.Count(a) != 1 {
		t.Fatalf("after releases a counts %d, want 1", u.Count(a))
	}

	u.reserve(a, "a-5", 5, 10)
	u.created(a, "a-5")
	u.release(a, "a-5")
	u.reserve(b, "b-3", 5, 10)
	if u.Count(a) != 2 || u.Count(b) != 1 {
		t.Fatalf("a %d, b %d; want 2 (created stays) and 1 (reserved)", u.Count(a), u.Count(b))
	}
	clk.Step(reservationTTL + time.Second)
	if u.Count(a) != 2 || u.Count(b) != 0 || u.Total() != 2 {
		t.Fatalf("after the reservation's time: a %d, b %d, total %d; want 2, 0, 2", u.Count(a), u.Count(b), u.Total())
	}
	u.observe(unfinishedDelivery("a", "a-5", hookpostv1.DeliveryFailed), false)
	u.observe(unfinishedDelivery("a", "a-1", hookpostv1.DeliverySucceeded), false)
	if u.Total() != 0 || len(u.subs) != 0 || len(u.reserving) != 0 {
		t.Fatalf("everything finished: total %d, %d subscriptions, %d reserving; want none", u.Total(), len(u.subs), len(u.reserving))
	}
}

func TestBackloggedCondition(t *testing.T) {
	for _, tc := range []struct {
		name       string
		paused     bool
		left       int64
		wantStatus metav1.ConditionStatus
		wantReason string
		atCap      bool
		wantText   string
	}{
		{name: "drained", left: 0, wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonBacklogDrained, wantText: "every parked event"},
		{name: "drained while paused", paused: true, left: 0, wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonBacklogDrained, wantText: "every parked event"},
		{name: "paused", paused: true, left: 15, atCap: true, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonUnfinishedCapReached, wantText: "15 events are parked in the ledger's database: the subscription is paused"},
		{name: "receiver behind", left: 3, atCap: true, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonUnfinishedCapReached, wantText: "as its deliveries finish"},
		{name: "endpoint failing, below the caps", left: 7, wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonEndpointUnavailable, wantText: "7 events are parked in the ledger's database: they came while the endpoint's circuit was open, its attempts hung or its first attempts failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := &hookpostv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
			sub.Spec.Paused = tc.paused
			c := backloggedCondition(sub, tc.left, 5, 100, tc.atCap)
			if c.Type != hookpostv1.ConditionBacklogged || c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.ObservedGeneration != 4 {
				t.Errorf("condition %+v, want %s %s at generation 4", c, tc.wantStatus, tc.wantReason)
			}
			if !strings.Contains(c.Message, tc.wantText) {
				t.Errorf("message %q, want it to contain %q", c.Message, tc.wantText)
			}
		})
	}
}
