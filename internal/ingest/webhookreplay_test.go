package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// insertAtSecond writes rows whose occurred_at is a whole second, as insert does otherwise: a delivery object
// keeps occurredAt in seconds, so the body an object sends is then byte for byte the one the first attempt sent.
func insertAtSecond(t testing.TB, table string, rows ...row) []string {
	t.Helper()
	return insertWith(t, `INSERT INTO `+pgx.Identifier{table}.Sanitize()+` (event_type, tenant_id, collection, payload, occurred_at)
VALUES ($1, $2, $3, $4, date_trunc('second', now())) RETURNING event_id::text`, rows...)
}

// nextSecond waits for the next whole second and returns it: spec.source.since, a Kubernetes time, has whole
// seconds, so what happened before it must happen in an earlier second.
func nextSecond() time.Time {
	next := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(next))
	return next
}

// replay creates a WebhookReplay in ns and returns it once its Complete condition is True.
func replay(t *testing.T, ns, name string, spec hookpostv1.WebhookReplaySpec) *hookpostv1.WebhookReplay {
	t.Helper()
	rp := &hookpostv1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := cp.Client.Create(context.Background(), rp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay Complete", func() bool {
		_ = cp.Client.Get(context.Background(), client.ObjectKeyFromObject(rp), rp)
		return meta.IsStatusConditionTrue(rp.Status.Conditions, hookpostv1.ConditionComplete)
	})
	return rp
}

// byEvent returns each request's body by its X-Event-Id, failing on a test event: a replay sends real events.
func byEvent(t *testing.T, got []harness.Received) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range got {
		if v := r.Header.Get(delivery.HeaderTest); v != "" {
			t.Errorf("request for event %s carries %s: %s; a replay sends the event as a real one", r.Header.Get(delivery.HeaderEventID), delivery.HeaderTest, v)
		}
		out[r.Header.Get(delivery.HeaderEventID)] = string(r.Body)
	}
	return out
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func wantStatus(t *testing.T, rp *hookpostv1.WebhookReplay, selected int32, reason string) {
	t.Helper()
	st := rp.Status
	c := meta.FindStatusCondition(st.Conditions, hookpostv1.ConditionComplete)
	if st.Selected != selected || st.Sent != selected || st.Succeeded != selected || st.Failed != 0 || c.Reason != reason {
		t.Errorf("status = selected %d, sent %d, succeeded %d, failed %d, Complete %s (%s); want %d, %d, %d, 0, %s",
			st.Selected, st.Sent, st.Succeeded, st.Failed, c.Reason, c.Message, selected, selected, selected, reason)
	}
}

// TestPrunedDeliveriesAreReplayedFromTheLedger: three events fail for good (400) and the failed history limit of 1
// prunes the two oldest objects; the ledger keeps their events, and a WebhookReplay of the Failed deliveries makes
// them again, so all three arrive again, real events with the same event ids and the same bodies.
func TestPrunedDeliveriesAreReplayedFromTheLedger(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/orders", harness.Response{Status: 400})
	ns := namespace(t)
	src, table := newOutbox(t, postgres.Options{})
	w := newLedger(t, table)
	startOperator(t, operatorConfig{flushInterval: time.Hour, ledger: w, namespace: ns}, src)
	readySubscription(t, fixtures.Subscription(ns, "orders", rcv.URL+"/orders", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.HistoryLimits(10, 1)))

	ids := insertAtSecond(t, table, row{"order.created", "", "", `{"n":1}`}, row{"order.created", "", "", `{"n":2}`}, row{"order.created", "", "", `{"n":3}`})
	waitFor(t, "two Failed deliveries pruned, one left", func() bool {
		return getSubscription(t, ns, "orders").Status.PrunedFailed == 2 && len(deliveries(t, ns)) == 1
	})
	first := byEvent(t, rcv.Requests("/orders"))
	if fmt.Sprint(keys(first)) != fmt.Sprint(sortedCopy(ids)) {
		t.Fatalf("first attempts for events %v, want %v", keys(first), sortedCopy(ids))
	}
	kept, err := w.Pruned().Pruned(context.Background(), ledger.PrunedQuery{Namespace: ns})
	if err != nil || len(kept) != 2 {
		t.Fatalf("ledger keeps %+v (%v), want the two pruned deliveries", kept, err)
	}
	for _, p := range kept {
		if p.Phase != string(hookpostv1.DeliveryFailed) || p.Reason != hookpostv1.ReasonRejected || p.DeliveryName != hookpostv1.DeliveryName("orders", p.EventID) ||
			!json.Valid(p.Data) || len(p.Data) == 0 {
			t.Errorf("ledger keeps %+v, want a Failed, Rejected delivery with its event's data", p)
		}
	}

	rcv.Script("/orders", harness.Response{Status: 200})
	rp := replay(t, ns, "failed-again", hookpostv1.WebhookReplaySpec{
		Selector: hookpostv1.ReplaySelector{SubscriptionName: "orders", Phases: []hookpostv1.DeliveryPhase{hookpostv1.DeliveryFailed}},
		Rate:     hookpostv1.ReplayRate{PerSecond: 100},
	})
	wantStatus(t, rp, 3, hookpostv1.ReasonReplaySucceeded)
	again := byEvent(t, rcv.Requests("/orders")[len(ids):])
	if len(rcv.Requests("/orders")) != 2*len(ids) {
		t.Errorf("receiver got %d requests, want %d: each event once more", len(rcv.Requests("/orders")), 2*len(ids))
	}
	for _, id := range ids {
		if again[id] != first[id] {
			t.Errorf("event %s replayed with body %q, first sent %q", id, again[id], first[id])
		}
		d, ok := getDelivery(t, ns, hookpostv1.DeliveryName("orders", id))
		if !ok || d.Status.Phase != hookpostv1.DeliverySucceeded {
			t.Errorf("delivery of event %s after the replay: %v, want Succeeded", id, d)
		}
	}
}

// TestOutboxReReadFromATimeReplaysItsWindow: a WebhookReplay with spec.source Outbox re-reads the done rows
// processed since a time: each goes again to the subscriptions of the replay's namespace it matches (the fast path
// left no object, so the replay makes them), not to a subscription of another namespace that matched it too, and
// not the row processed before the time.
func TestOutboxReReadFromATimeReplaysItsWindow(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	ns, other := namespace(t), namespace(t)
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	readySubscription(t, fixtures.Subscription(ns, "orders", rcv.URL+"/orders", fixtures.Events("order.*"), fixtures.InsecureHTTP()))
	readySubscription(t, fixtures.Subscription(ns, "users", rcv.URL+"/users", fixtures.Events("user.*"), fixtures.InsecureHTTP()))
	readySubscription(t, fixtures.Subscription(other, "everything", rcv.URL+"/other", fixtures.Events("*"), fixtures.InsecureHTTP()))

	old := insertAtSecond(t, table, row{"order.created", "", "", `{"n":0}`})
	waitFor(t, "the first row delivered", func() bool { return pendingRows(t, table) == 0 && len(rcv.Requests("/orders")) == 1 })
	since := nextSecond()
	ids := insertAtSecond(t, table, row{"order.created", "", "", `{"n":1}`}, row{"order.paid", "", "", `{"n":2}`}, row{"user.registered", "", "", `{"n":3}`})
	// Rows are done once their batch is acknowledged, after the attempts: only done rows are re-read.
	waitFor(t, "the window delivered and done", func() bool {
		return len(rcv.Requests("/orders")) == 3 && len(rcv.Requests("/users")) == 1 && len(rcv.Requests("/other")) == 4 && pendingRows(t, table) == 0
	})
	first := byEvent(t, rcv.Requests("/orders"))

	rp := replay(t, ns, "since", hookpostv1.WebhookReplaySpec{
		Source: &hookpostv1.ReplaySource{Kind: hookpostv1.ReplaySourceOutbox, Since: metav1.NewTime(since)},
		Rate:   hookpostv1.ReplayRate{PerSecond: 100},
	})
	wantStatus(t, rp, 3, hookpostv1.ReasonReplaySucceeded)
	orders := byEvent(t, rcv.Requests("/orders")[3:])
	if got, want := keys(orders), sortedCopy(ids[:2]); fmt.Sprint(got) != fmt.Sprint(want) || len(rcv.Requests("/orders")) != 5 {
		t.Errorf("orders got %v again (%d requests in all), want %v, not %s from before the window", got, len(rcv.Requests("/orders")), want, old[0])
	}
	for id, body := range orders {
		if body != first[id] {
			t.Errorf("event %s replayed with body %q, first sent %q", id, body, first[id])
		}
	}
	if users := byEvent(t, rcv.Requests("/users")[1:]); fmt.Sprint(keys(users)) != fmt.Sprint([]string{ids[2]}) {
		t.Errorf("users got %v again, want [%s]", keys(users), ids[2])
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rcv.Requests("/other")); n != 4 {
		t.Errorf("the subscription of namespace %s got %d requests, want 4: a replay in %s reached it", other, n, ns)
	}

	// A source the operator does not read cannot be replayed; the condition says so.
	bad := &hookpostv1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-stream"}, Spec: hookpostv1.WebhookReplaySpec{
		Source: &hookpostv1.ReplaySource{Kind: hookpostv1.ReplaySourceJetStream, Since: metav1.NewTime(since)}}}
	if err := cp.Client.Create(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Complete=False SourceNotConfigured", func() bool {
		_ = cp.Client.Get(context.Background(), client.ObjectKeyFromObject(bad), bad)
		c := meta.FindStatusCondition(bad.Status.Conditions, hookpostv1.ConditionComplete)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == hookpostv1.ReasonSourceNotConfigured
	})
}

// TestJetStreamReReadFromATimeReplaysItsWindow: the same with spec.source JetStream, through an ephemeral consumer
// from the time; an existing delivery object of a match is replayed instead of made again.
func TestJetStreamReReadFromATimeReplaysItsWindow(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/flaky", harness.Response{Status: 503}, harness.Response{Status: 200})
	ns, other := namespace(t), namespace(t)
	src, js, prefix := newStream(t)
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	readySubscription(t, fixtures.Subscription(ns, "orders", rcv.URL+"/orders", fixtures.Events("order.*"), fixtures.InsecureHTTP()))
	readySubscription(t, fixtures.Subscription(ns, "flaky", rcv.URL+"/flaky", fixtures.Events("user.*"), fixtures.InsecureHTTP(), fixtures.Schedule(time.Second)))
	readySubscription(t, fixtures.Subscription(other, "everything", rcv.URL+"/other", fixtures.Events("*"), fixtures.InsecureHTTP()))
	publish := func(evs ...source.Event) {
		for _, ev := range evs {
			if err := natssource.Publish(context.Background(), js, prefix, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := time.Now().Truncate(time.Second)
	publish(source.Event{ID: "old", Type: "order.created", OccurredAt: at, Data: json.RawMessage(`{"n":0}`)})
	waitFor(t, "the first event delivered", func() bool { return len(rcv.Requests("/orders")) == 1 && len(rcv.Requests("/other")) == 1 })
	since := nextSecond()
	publish(source.Event{ID: "e1", Type: "order.created", OccurredAt: at, Data: json.RawMessage(`{"n":1}`)},
		source.Event{ID: "e2", Type: "user.registered", OccurredAt: at, Data: json.RawMessage(`{"n":2}`)})
	waitFor(t, "the window delivered, the flaky one after a retry", func() bool {
		d, ok := getDelivery(t, ns, hookpostv1.DeliveryName("flaky", "e2"))
		return len(rcv.Requests("/orders")) == 2 && len(rcv.Requests("/other")) == 3 && ok && d.Status.Phase == hookpostv1.DeliverySucceeded
	})
	first := byEvent(t, append(rcv.Requests("/orders"), rcv.Requests("/flaky")...))

	rp := replay(t, ns, "since", hookpostv1.WebhookReplaySpec{
		Source: &hookpostv1.ReplaySource{Kind: hookpostv1.ReplaySourceJetStream, Since: metav1.NewTime(since)},
		Rate:   hookpostv1.ReplayRate{PerSecond: 100},
	})
	wantStatus(t, rp, 2, hookpostv1.ReasonReplaySucceeded)
	again := byEvent(t, append(rcv.Requests("/orders")[2:], rcv.Requests("/flaky")[2:]...))
	if fmt.Sprint(keys(again)) != "[e1 e2]" {
		t.Errorf("replayed events %v, want [e1 e2]", keys(again))
	}
	for id, body := range again {
		if body != first[id] {
			t.Errorf("event %s replayed with body %q, first sent %q", id, body, first[id])
		}
	}
	d, _ := getDelivery(t, ns, hookpostv1.DeliveryName("flaky", "e2"))
	if d.Status.Attempts != 3 || d.Status.AttemptsBeforeReplay != 2 {
		t.Errorf("the existing delivery has %d attempts, %d before the replay; want 3 and 2: replayed, history kept", d.Status.Attempts, d.Status.AttemptsBeforeReplay)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rcv.Requests("/other")); n != 3 {
		t.Errorf("the subscription of namespace %s got %d requests, want 3: a replay in %s reached it", other, n, ns)
	}
}

// TestSourceReplayKeepsToTheNamespacesTenants: under tenant isolation, a WebhookReplay re-reading the outbox in a
// namespace granted tenant acme sends acme's event again and never an event of another tenant, not even to a
// subscription of the namespace that filters on that tenant.
func TestSourceReplayKeepsToTheNamespacesTenants(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	acme := namespace(t)
	grant(t, acme, "acme")
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour, tenantIsolation: true, namespace: acme}, src)
	readySubscription(t, fixtures.Subscription(acme, "everything", rcv.URL+"/acme", fixtures.Events("*"), fixtures.InsecureHTTP()))
	readySubscription(t, fixtures.Subscription(acme, "globex-spy", rcv.URL+"/spy", fixtures.Events("*"), fixtures.InsecureHTTP(), fixtures.Filter([]string{"globex"}, nil)))

	since := nextSecond()
	ids := insertAtSecond(t, table, row{typ: "order.created", tenant: "acme", payload: `{"n":1}`}, row{typ: "order.created", tenant: "globex", payload: `{"n":2}`})
	waitFor(t, "both rows done, acme's delivered", func() bool { return pendingRows(t, table) == 0 && len(rcv.Requests("/acme")) == 1 })

	rp := replay(t, acme, "since", hookpostv1.WebhookReplaySpec{
		Source: &hookpostv1.ReplaySource{Kind: hookpostv1.ReplaySourceOutbox, Since: metav1.NewTime(since)},
	})
	wantStatus(t, rp, 1, hookpostv1.ReasonReplaySucceeded)
	if got := keys(byEvent(t, rcv.Requests("/acme"))); fmt.Sprint(got) != fmt.Sprint([]string{ids[0]}) || len(rcv.Requests("/acme")) != 2 {
		t.Errorf("acme's subscription got events %v in %d requests, want %s twice", got, len(rcv.Requests("/acme")), ids[0])
	}
	if n := len(rcv.Requests("/spy")); n != 0 {
		t.Errorf("the subscription filtering on tenant globex got %d requests: the replay delivered a tenant the namespace is not granted", n)
	}
}
