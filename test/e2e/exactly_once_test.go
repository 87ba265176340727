package e2e

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
)

// sourceDrained reports whether the source has nothing left to hand over, with a description for failure messages.
type sourceDrained func() (drained bool, state string)

// waitQuiescent waits until the source is drained, the receiver has got every expected event on every route and
// no delivery is unfinished; then it waits a little longer and checks that nothing moved, so a late duplicate
// ingest would be caught by the assertions that follow.
func (tb *testbed) waitQuiescent(want map[string]map[string]bool, drained sourceDrained) {
	tb.t.Helper()
	start := time.Now()
	deadline := start.Add(quiescentTimeout)
	var why string
	for {
		var done bool
		done, why = tb.quiescent(want, drained)
		if done {
			break
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("not quiescent after %s: %s", quiescentTimeout, why)
		}
		time.Sleep(pollInterval)
	}
	tb.t.Logf("Quiescent after %s", time.Since(start).Round(100*time.Millisecond))
	time.Sleep(3 * time.Second)
	if done, why := tb.quiescent(want, drained); !done {
		tb.t.Fatalf("quiescent, then not any more 3s later: %s", why)
	}
}

func (tb *testbed) quiescent(want map[string]map[string]bool, drained sourceDrained) (bool, string) {
	var problems []string
	if ok, state := drained(); !ok {
		problems = append(problems, "source not drained: "+state)
	}
	received := tb.receivedIDs()
	for _, r := range tb.routes {
		missing := 0
		for id := range want[r.name] {
			if received[r.name][id] == 0 {
				missing++
			}
		}
		if missing > 0 {
			problems = append(problems, fmt.Sprintf("receiver misses %d of %d events of subscription %s", missing, len(want[r.name]), r.name))
		}
	}
	unfinished := &metav1.PartialObjectMetadataList{}
	unfinished.SetGroupVersionKind(hookpostv1.GroupVersion.WithKind("WebhookDeliveryList"))
	err := tb.c.List(tb.ctx, unfinished, client.InNamespace(tb.ns), client.Limit(500),
		client.MatchingFieldsSelector{Selector: fields.OneTermNotEqualSelector("status.phase", string(hookpostv1.DeliverySucceeded))})
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("list unfinished deliveries: %v", err))
	default:
		for _, d := range unfinished.Items {
			if !succeededFirstAttempt(d.Annotations) {
				problems = append(problems, fmt.Sprintf("deliveries not Succeeded, such as %s", tb.describeDelivery(d.Name)))
				break
			}
		}
	}
	return len(problems) == 0, strings.Join(problems, "; ")
}

// succeededFirstAttempt reports whether a delivery was written for a first attempt that succeeded (one of the
// newest successes, flushed as an object): the delivery controller has yet to move the attempt into status, and
// will make it Succeeded without sending anything.
func succeededFirstAttempt(annotations map[string]string) bool {
	first, err := controller.DecodeFirstAttempt(annotations[hookpostv1.AnnotationFirstAttempt])
	return err == nil && first.Class == delivery.ClassSucceeded
}

func (tb *testbed) describeDelivery(name string) string {
	d := &hookpostv1.WebhookDelivery{}
	if err := tb.c.Get(tb.ctx, client.ObjectKey{Namespace: tb.ns, Name: name}, d); err != nil {
		return fmt.Sprintf("%s (%v)", name, err)
	}
	s := fmt.Sprintf("%s (phase %q, attempts %d", name, d.Status.Phase, d.Status.Attempts)
	if c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered); c != nil {
		s += fmt.Sprintf(", %s: %s", c.Reason, c.Message)
	}
	if a := d.Status.LastAttempt; a != nil && a.Error != "" {
		s += ", last error: " + a.Error
	}
	return s + ")"
}

// receivedIDs counts the requests the receiver got, per subscription and event id.
func (tb *testbed) receivedIDs() map[string]map[string]int {
	got := map[string]map[string]int{}
	for _, r := range tb.routes {
		got[r.name] = map[string]int{}
		for _, req := range tb.recv.Requests(r.path) {
			got[r.name][req.Header.Get(delivery.HeaderEventID)]++
		}
	}
	return got
}

// deliveriesPerSubscription lists every WebhookDelivery of the namespace and counts them per subscription and
// event id. It also checks that each is named after its (subscription, event id), as ingest names them.
func (tb *testbed) deliveriesPerSubscription() (map[string]map[string]int, []hookpostv1.WebhookDelivery) {
	tb.t.Helper()
	list := &hookpostv1.WebhookDeliveryList{}
	if err := tb.c.List(tb.ctx, list, client.InNamespace(tb.ns)); err != nil {
		tb.t.Fatalf("list deliveries: %v", err)
	}
	counts := map[string]map[string]int{}
	for _, d := range list.Items {
		sub, id := d.Spec.SubscriptionName, d.Spec.Event.ID
		if counts[sub] == nil {
			counts[sub] = map[string]int{}
		}
		counts[sub][id]++
		if want := hookpostv1.DeliveryName(sub, id); d.Name != want {
			tb.t.Errorf("delivery %s of event %s for %s should be named %s", d.Name, id, sub, want)
		}
	}
	return counts, list.Items
}

// assertDelivered checks what a user may rely on whatever crashed: the receiver got every expected (subscription,
// event) pair at least once and nothing else; no pair has more than one WebhookDelivery (they are named after it)
// and there is none for a pair not expected; every delivery that exists Succeeded. Successes of the first attempt
// need no object of their own (only the newest per flush interval get one), so a pair without an object is fine.
// Receiver duplicates are allowed (a crash between a 2xx and acknowledging the event resends it) and logged.
func (tb *testbed) assertDelivered(want map[string]map[string]bool) {
	tb.t.Helper()
	counts, items := tb.deliveriesPerSubscription()
	for _, r := range tb.routes {
		var dup, unexpected []string
		for id, n := range counts[r.name] {
			if n > 1 {
				dup = append(dup, fmt.Sprintf("%s x%d", id, n))
			}
			if !want[r.name][id] {
				unexpected = append(unexpected, id)
			}
		}
		if len(dup)+len(unexpected) > 0 {
			tb.t.Errorf("subscription %s: %d events with more than one delivery %s, %d deliveries for events it does not match %s",
				r.name, len(dup), sample(dup), len(unexpected), sample(unexpected))
		}
	}
	for sub := range counts {
		if _, ok := want[sub]; !ok {
			tb.t.Errorf("%d deliveries for %q, which is not a subscription of this test", len(counts[sub]), sub)
		}
	}
	var notSucceeded []string
	for _, d := range items {
		if d.Status.Phase != hookpostv1.DeliverySucceeded && !succeededFirstAttempt(d.Annotations) {
			notSucceeded = append(notSucceeded, d.Name+"="+string(d.Status.Phase))
		}
	}
	if len(notSucceeded) > 0 {
		tb.t.Errorf("%d deliveries not Succeeded: %s", len(notSucceeded), sample(notSucceeded))
	}

	received := tb.receivedIDs()
	resent, total := 0, 0
	for _, r := range tb.routes {
		total += len(want[r.name])
		var missing, unexpected []string
		for id := range want[r.name] {
			if received[r.name][id] == 0 {
				missing = append(missing, id)
			}
		}
		for id, n := range received[r.name] {
			if !want[r.name][id] {
				unexpected = append(unexpected, id)
			}
			resent += n - 1
		}
		if len(missing)+len(unexpected) > 0 {
			tb.t.Errorf("receiver path %s: %d expected events never received %s, %d received that %s does not match %s",
				r.path, len(missing), sample(missing), len(unexpected), r.name, sample(unexpected))
		}
	}
	tb.t.Logf("%d (subscription, event) pairs received, %d WebhookDeliveries (at most one per pair); the receiver got %d requests more than once (allowed: at least once)",
		total, len(items), resent)
}

// assertCounted waits until each subscription's status counts every expected pair as delivered, exactly: for runs
// without an operator crash, which would lose up to one flush interval of counts, or resend successes.
func (tb *testbed) assertCounted(want map[string]map[string]bool) {
	tb.t.Helper()
	for _, r := range tb.routes {
		waitUntil(tb.t, time.Minute, "subscription "+r.name+" counting its deliveries", func() (bool, string) {
			sub := &hookpostv1.WebhookSubscription{}
			if err := tb.c.Get(tb.ctx, client.ObjectKey{Namespace: tb.ns, Name: r.name}, sub); err != nil {
				return false, err.Error()
			}
			return sub.Status.Delivered == int64(len(want[r.name])) && sub.Status.Failed == 0,
				fmt.Sprintf("delivered %d (%d without an object), failed %d; want %d delivered", sub.Status.Delivered, sub.Status.DeliveredWithoutObject, sub.Status.Failed, len(want[r.name]))
		})
	}
}

func sample(s []string) string {
	if len(s) == 0 {
		return ""
	}
	sort.Strings(s)
	if len(s) > 5 {
		return fmt.Sprintf("%v...", s[:5])
	}
	return fmt.Sprint(s)
}
