package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ingest"
	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// startCaps wires the unfinished-delivery caps into a test operator as the binary does: the count from the
// cache, the caps' refresh, and with a ledger the table of parked deliveries and the drain. It returns the
// Refusals (with Events) and the Caps for the first attempt.
func startCaps(t testing.TB, ctx context.Context, mgr ctrl.Manager, cfg operatorConfig, rec ledger.Recorder, sealer *controller.Sealer,
	breakers *delivery.Breakers, sender *delivery.Sender) (*ingest.Refusals, *ingest.Caps) {
	t.Helper()
	unfinished, err := ingest.WatchUnfinished(ctx, mgr.GetCache(), nil)
	if err != nil {
		t.Fatal(err)
	}
	refusals := ingest.NewRefusals(ingest.RefusalsOptions{Client: mgr.GetClient(), Reader: mgr.GetCache(), Direct: mgr.GetAPIReader(),
		Events: mgr.GetEventRecorder("hookpost-ingest"), Ledger: rec})
	var parking ledger.Parking
	if cfg.ledger != nil {
		parking = cfg.ledger.Parking()
	}
	caps := ingest.NewCaps(ingest.CapsOptions{PerSubscription: cfg.maxUnfinished, Unfinished: unfinished, Parking: parking, Refusals: refusals})
	if err := mgr.Add(caps); err != nil {
		t.Fatal(err)
	}
	if parking != nil {
		if err := mgr.Add(ingest.NewDrain(ingest.DrainOptions{Client: mgr.GetClient(), Reader: mgr.GetCache(), Parking: parking, Caps: caps,
			Refusals: refusals, Sealer: sealer, Events: mgr.GetEventRecorder("hookpost-drain"),
			EndpointRoom: ingest.EndpointRoom(breakers, sender, clock.RealClock{}), Parallelism: cfg.drainParallelism})); err != nil {
			t.Fatal(err)
		}
	}
	capsMetricsOnce.Do(func() {
		metrics.Register(capsMetrics, delivery.NewSender(delivery.SenderOptions{}), func() float64 { return 0 },
			func() float64 { return float64(unfinished.Total()) }, delivery.NewBreakers())
	})
	return refusals, caps
}

// capsMetrics holds the operator's metrics as the binary registers them; the counters are the process's, so
// tests read differences.
var (
	capsMetrics     = prometheus.NewRegistry()
	capsMetricsOnce sync.Once
)

// metricValue is the value of the metric name with the label pairs labels (name, value, ...), 0 when absent.
func metricValue(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	families, err := capsMetrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func pgxConn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// parkedEvents returns the event ids parked in the table next to ledger table, in order of arrival.
func parkedEvents(t *testing.T, ledgerTable string) []string {
	t.Helper()
	rows, err := pgxConn(t).Query(context.Background(), fmt.Sprintf(`SELECT event_id FROM %q ORDER BY seq`, ledgerTable+"_parked"))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// watchCreations records the names of the deliveries created in ns from now on, in the order the API server
// made them.
func watchCreations(t *testing.T, ns string) func() []string {
	t.Helper()
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: harness.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// From the list's resourceVersion on: the deliveries that exist already are not created now.
	existing := &hookpostv1.WebhookDeliveryList{}
	if err := wc.List(context.Background(), existing, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &hookpostv1.WebhookDeliveryList{}, client.InNamespace(ns),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: existing.ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	var mu sync.Mutex
	var names []string
	go func() {
		for e := range w.ResultChan() {
			if d, ok := e.Object.(*hookpostv1.WebhookDelivery); ok && e.Type == watch.Added {
				mu.Lock()
				names = append(names, d.Name)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(names)
	}
}

// removeSubscriptionsAfter deletes ns's subscriptions (and so their deliveries) when the test ends: the operators
// of later tests match every namespace's subscriptions and reconcile every delivery.
func removeSubscriptionsAfter(t *testing.T, ns string) {
	t.Cleanup(func() {
		_ = cp.Client.DeleteAllOf(context.Background(), &hookpostv1.WebhookSubscription{}, client.InNamespace(ns))
	})
}

func condition(t *testing.T, ns, name, typ string) *metav1.Condition {
	t.Helper()
	return meta.FindStatusCondition(getSubscription(t, ns, name).Status.Conditions, typ)
}

// events returns the notes of the Events of type kind with reason on subscription sub in ns.
func events(t *testing.T, ns, sub, kind, reason string) []string {
	t.Helper()
	list := &corev1.EventList{}
	if err := cp.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == sub && e.Type == kind && e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

// TestPastTheCapMatchesAreParkedAndDrainedInOrder: a paused subscription capped at 5 unfinished deliveries gets
// 20 events, one after the other. 5 become Pending objects and 15 are parked next to the ledger, in order; the
// subscription says so (Backlogged=True with the count, a Warning Event) and so do the metrics. Once it resumes,
// the parked ones become objects in order of arrival as room frees up, the receiver gets all 20 once each, the
// parked table is empty and Backlogged turns False with a Normal Event.
func TestPastTheCapMatchesAreParkedAndDrainedInOrder(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	ns := namespace(t)
	removeSubscriptionsAfter(t, ns)
	src, table := newOutbox(t, postgres.Options{})
	w := newLedger(t, table)
	// One object at a time, so the order they are made in is the order of arrival exactly.
	startOperator(t, operatorConfig{flushInterval: time.Hour, ledger: w, maxUnfinished: 5, drainParallelism: 1}, src)
	subscribe(t, fixtures.Subscription(ns, "paused", rcv.URL+"/p", fixtures.Events("capped.*"), fixtures.InsecureHTTP(), fixtures.Paused()))
	parkedBefore := metricValue(t, "hookpost_deliveries_parked_total")

	// One at a time, so the order of arrival is the order of the ids.
	var ids []string
	for i := range 20 {
		ids = append(ids, insert(t, table, row{"capped.event", "", "", fmt.Sprintf(`{"n":%d}`, i)})...)
		waitFor(t, "the event ingested", func() bool { return pendingRows(t, table) == 0 })
	}
	var want []string
	for _, id := range ids[:5] {
		want = append(want, "paused/"+id)
	}
	if got := deliveries(t, ns); fmt.Sprint(got) != fmt.Sprint(sortedCopy(want)) {
		t.Fatalf("deliveries = %v, want the first 5 events' %v", got, want)
	}
	if got := parkedEvents(t, "ledger_"+table); fmt.Sprint(got) != fmt.Sprint(ids[5:]) {
		t.Fatalf("parked = %v, want the last 15 events in order %v", got, ids[5:])
	}
	if got := metricValue(t, "hookpost_deliveries_parked_total") - parkedBefore; got != 15 {
		t.Errorf("hookpost_deliveries_parked_total grew by %v, want 15", got)
	}
	waitFor(t, "Backlogged=True counting 15", func() bool {
		c := condition(t, ns, "paused", hookpostv1.ConditionBacklogged)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == hookpostv1.ReasonUnfinishedCapReached &&
			strings.HasPrefix(c.Message, "15 events are parked")
	})
	if c := condition(t, ns, "paused", hookpostv1.ConditionBacklogged); !strings.Contains(c.Message, "paused") {
		t.Errorf("Backlogged message %q, want it to say the subscription is paused", c.Message)
	}
	waitFor(t, "hookpost_parked_deliveries at 15", func() bool { return metricValue(t, "hookpost_parked_deliveries") == 15 })
	if got := metricValue(t, "hookpost_unfinished_deliveries"); got < 5 {
		t.Errorf("hookpost_unfinished_deliveries = %v, want at least this subscription's 5", got)
	}
	waitFor(t, "a Warning Event", func() bool {
		return len(events(t, ns, "paused", corev1.EventTypeWarning, hookpostv1.ReasonUnfinishedCapReached)) == 1
	})
	if n := len(rcv.Requests("")); n != 0 {
		t.Fatalf("a paused subscription's receiver got %d requests", n)
	}

	created := watchCreations(t, ns)
	s := getSubscription(t, ns, "paused")
	before := s.DeepCopy()
	s.Spec.Paused = false
	if err := cp.Client.Patch(context.Background(), s, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "20 requests", func() bool { return len(rcv.Requests("/p")) >= 20 })
	seen := map[string]int{}
	for _, r := range rcv.Requests("/p") {
		seen[r.Header.Get(delivery.HeaderEventID)]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %s received %d times, want once", id, seen[id])
		}
	}
	var wantOrder []string
	for _, id := range ids[5:] {
		wantOrder = append(wantOrder, hookpostv1.DeliveryName("paused", id))
	}
	if got := created(); fmt.Sprint(got) != fmt.Sprint(wantOrder) {
		t.Errorf("parked deliveries created in the order %v, want the order of arrival %v", got, wantOrder)
	}
	if got := parkedEvents(t, "ledger_"+table); len(got) != 0 {
		t.Errorf("parked after draining: %v, want none", got)
	}
	waitFor(t, "Backlogged=False", func() bool {
		c := condition(t, ns, "paused", hookpostv1.ConditionBacklogged)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == hookpostv1.ReasonBacklogDrained
	})
	waitFor(t, "a Normal Event", func() bool {
		return len(events(t, ns, "paused", corev1.EventTypeNormal, hookpostv1.ReasonBacklogDrained)) == 1
	})
	waitFor(t, "every delivery Succeeded", func() bool {
		list := &hookpostv1.WebhookDeliveryList{}
		_ = cp.Client.List(context.Background(), list, client.InNamespace(ns))
		n := 0
		for _, d := range list.Items {
			if d.Status.Phase == hookpostv1.DeliverySucceeded {
				n++
			}
		}
		return n == 20
	})
}

// TestPastTheCapWithoutALedgerIsRefusedLoudly: without a ledger, a paused subscription capped at 2 keeps 2
// Pending deliveries and refuses the rest: DeliveriesRefused=True with reason UnfinishedCapReached, a Warning
// Event, hookpost_deliveries_refused_total{reason="unfinishedCap"}. Another subscription's events flow all the
// same.
func TestPastTheCapWithoutALedgerIsRefusedLoudly(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	ns := namespace(t)
	removeSubscriptionsAfter(t, ns)
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour, maxUnfinished: 2}, src)
	subscribe(t, fixtures.Subscription(ns, "paused", rcv.URL+"/p", fixtures.Events("capped.*"), fixtures.InsecureHTTP(), fixtures.Paused()))
	readySubscription(t, fixtures.Subscription(ns, "open", rcv.URL+"/o", fixtures.Events("capped.*"), fixtures.InsecureHTTP()))
	refusedBefore := metricValue(t, "hookpost_deliveries_refused_total", "reason", "unfinishedCap")

	var rows []row
	for i := range 5 {
		rows = append(rows, row{"capped.event", "", "", fmt.Sprintf(`{"n":%d}`, i)})
	}
	ids := insert(t, table, rows...)
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	waitFor(t, "5 requests to the other subscription", func() bool { return len(rcv.Requests("/o")) == 5 })
	if got := deliveries(t, ns); len(got) != 2 || !strings.HasPrefix(got[0], "paused/") || !strings.HasPrefix(got[1], "paused/") {
		t.Fatalf("deliveries = %v, want 2 of the paused subscription", got)
	}
	if got := metricValue(t, "hookpost_deliveries_refused_total", "reason", "unfinishedCap") - refusedBefore; got != 3 {
		t.Errorf("hookpost_deliveries_refused_total{reason=unfinishedCap} grew by %v, want 3", got)
	}
	waitFor(t, "DeliveriesRefused=True", func() bool {
		c := condition(t, ns, "paused", hookpostv1.ConditionDeliveriesRefused)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == hookpostv1.ReasonUnfinishedCapReached
	})
	if c := condition(t, ns, "paused", hookpostv1.ConditionDeliveriesRefused); !strings.Contains(c.Message, "--max-unfinished-per-subscription=2") {
		t.Errorf("condition message %q, want the cap and what to do", c.Message)
	}
	waitFor(t, "a Warning Event", func() bool {
		return len(events(t, ns, "paused", corev1.EventTypeWarning, hookpostv1.ReasonUnfinishedCapReached)) > 0
	})
	if c := condition(t, ns, "open", hookpostv1.ConditionDeliveriesRefused); c != nil {
		t.Errorf("the other subscription has %+v, want no DeliveriesRefused condition", c)
	}
	got := map[string]int{}
	for _, r := range rcv.Requests("/o") {
		got[r.Header.Get(delivery.HeaderEventID)]++
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("the other subscription received event %s %d times, want once", id, got[id])
		}
	}
}

// TestFailedDeliveriesArePrunedOnlyOnceTheLedgerHasThem: three deliveries fail (404, not retried) beyond a
// failedLimit of 1 while the ledger cannot be written (its table does not exist yet). The subscription counts
// them and prunes none: the objects are the only durable record of those attempts. Once the ledger can be
// written, the two oldest are pruned, and the ledger holds their attempts. The operator's clock is a fake one,
// stepped a minute after each failure: completion times are whole seconds, and three failures within one second
// would leave "oldest" to chance.
func TestFailedDeliveriesArePrunedOnlyOnceTheLedgerHasThem(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/gone", harness.Response{Status: 404})
	ns := namespace(t)
	removeSubscriptionsAfter(t, ns)
	src, table := newOutbox(t, postgres.Options{})
	// Not migrated: every write fails until the test creates the table.
	w, err := ledgerpg.New(context.Background(), ledgerpg.Options{DSN: pg.DSN(), Table: "ledger_" + table, Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	clk := clocktesting.NewFakeClock(time.Now())
	startOperator(t, operatorConfig{flushInterval: time.Hour, ledger: w, clock: clk}, src)
	readySubscription(t, fixtures.Subscription(ns, "failing", rcv.URL+"/gone", fixtures.Events("pruned.*"), fixtures.InsecureHTTP(),
		fixtures.HistoryLimits(10, 1)))

	var ids []string
	for range 3 {
		// One after the other, so the oldest failures are known.
		ids = append(ids, insert(t, table, row{"pruned.event", "", "", `{}`})...)
		id := ids[len(ids)-1]
		waitFor(t, "the delivery Failed", func() bool {
			d, ok := getDelivery(t, ns, hookpostv1.DeliveryName("failing", id))
			return ok && d.Status.Phase == hookpostv1.DeliveryFailed
		})
		clk.Step(time.Minute)
	}
	waitFor(t, "the subscription counting 3 failed", func() bool { return getSubscription(t, ns, "failing").Status.Failed == 3 })
	if s := getSubscription(t, ns, "failing"); s.Status.PrunedFailed != 0 {
		t.Fatalf("prunedFailed = %d while the ledger cannot be written, want 0", s.Status.PrunedFailed)
	}
	if got := deliveries(t, ns); len(got) != 3 {
		t.Fatalf("deliveries = %v, want all 3 kept while the ledger cannot be written", got)
	}

	if err := w.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Any change brings the subscription back (else its retry does, 30 s later).
	s := getSubscription(t, ns, "failing")
	before := s.DeepCopy()
	s.Annotations = map[string]string{"test/touch": "1"}
	if err := cp.Client.Patch(context.Background(), s, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two Failed deliveries pruned", func() bool {
		return getSubscription(t, ns, "failing").Status.PrunedFailed == 2 && len(deliveries(t, ns)) == 1
	})
	if _, ok := getDelivery(t, ns, hookpostv1.DeliveryName("failing", ids[2])); !ok {
		t.Errorf("the newest Failed delivery was pruned; want the two oldest")
	}
	rows, err := w.Query(context.Background(), ledgerpg.Filter{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	inLedger := map[string]bool{}
	for _, a := range rows {
		if a.Outcome == ledger.OutcomeFailed && a.Number == 1 && a.StatusCode == 404 {
			inLedger[a.EventID] = true
		}
	}
	for _, id := range ids[:2] {
		if !inLedger[id] {
			t.Errorf("pruned delivery of event %s has no failed attempt in the ledger (rows %+v)", id, rows)
		}
	}
}

// startParkingOperator starts an operator on a new outbox with a ledger to park in and caps, in a new namespace
// whose subscriptions go with the test, and returns the namespace and the outbox table.
func startParkingOperator(t *testing.T) (ns, table string) {
	t.Helper()
	ns = namespace(t)
	removeSubscriptionsAfter(t, ns)
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour, ledger: newLedger(t, table), maxUnfinished: 1000}, src)
	return ns, table
}

// TestOpenCircuitParksMatchesWithALedger: with a ledger, the matches of a subscription whose circuit is open are
// parked (one row each) instead of each becoming a WebhookDelivery in the batch that ingested it, and stay rows
// while the circuit is open. Once it is due for a probe the drain makes their objects, the probe succeeds against
// the recovered receiver, and every one is delivered; another subscription gets every event throughout.
func TestOpenCircuitParksMatchesWithALedger(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/down", harness.Response{Status: 503})
	ns, table := startParkingOperator(t)
	readySubscription(t, fixtures.Subscription(ns, "down", rcv.URL+"/down", fixtures.Events("circuit.*"), fixtures.InsecureHTTP(),
		fixtures.Schedule(time.Hour), fixtures.CircuitBreaker(2, 3*time.Second, 0)))
	readySubscription(t, fixtures.Subscription(ns, "healthy", rcv.URL+"/ok", fixtures.Events("circuit.*"), fixtures.InsecureHTTP()))
	parkedBefore := metricValue(t, "hookpost_deliveries_parked_total")

	insert(t, table, row{"circuit.event", "", "", `{"n":1}`}, row{"circuit.event", "", "", `{"n":2}`})
	waitFor(t, "two failed first attempts", func() bool { return len(rcv.Requests("/down")) == 2 })
	held := insert(t, table, row{"circuit.event", "", "", `{"n":3}`}, row{"circuit.event", "", "", `{"n":4}`}, row{"circuit.event", "", "", `{"n":5}`})
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	if got := metricValue(t, "hookpost_deliveries_parked_total") - parkedBefore; got != 4 {
		t.Errorf("hookpost_deliveries_parked_total grew by %v, want 4: the second failed first attempt (parked with it) and the 3 matches of the open circuit", got)
	}
	waitFor(t, "the healthy subscription got all five", func() bool { return len(rcv.Requests("/ok")) == 5 })

	rcv.Script("/down", harness.Response{Status: 200})
	for _, id := range held {
		waitFor(t, "the parked event delivered after the endpoint recovered", func() bool {
			for _, r := range rcv.Requests("/down") {
				if r.Header.Get(delivery.HeaderEventID) == id && r.Header.Get(delivery.HeaderAttempt) == "1" {
					return true
				}
			}
			return false
		})
	}
	waitFor(t, "the parked table empty", func() bool { return len(parkedEvents(t, "ledger_"+table)) == 0 })
}

// TestFailingEndpointsFailedFirstAttemptsAreParkedWithTheirAttempt: with a ledger, the second failed first attempt
// in a row to one endpoint is parked carrying the attempt, instead of being written as an object at once. The
// drain makes its object, which keeps that attempt (the receiver gets no second attempt 1) and retries it on the
// schedule. An event after the endpoint recovers is attempted at once, not parked behind the row.
func TestFailingEndpointsFailedFirstAttemptsAreParkedWithTheirAttempt(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/flaky", harness.Response{Status: 503}, harness.Response{Status: 503}, harness.Response{Status: 200})
	ns, table := startParkingOperator(t)
	readySubscription(t, fixtures.Subscription(ns, "flaky", rcv.URL+"/flaky", fixtures.Events("flaky.*"), fixtures.InsecureHTTP(),
		fixtures.Schedule(5*time.Second), fixtures.CircuitBreaker(10, time.Minute, 0)))
	parkedBefore := metricValue(t, "hookpost_deliveries_parked_total")

	var failed []string
	for i := range 2 {
		failed = append(failed, insert(t, table, row{"flaky.event", "", "", fmt.Sprintf(`{"n":%d}`, i)})...)
		waitFor(t, "the failed first attempt", func() bool { return len(rcv.Requests("/flaky")) == i+1 })
	}
	waitFor(t, "both rows done", func() bool { return pendingRows(t, table) == 0 })
	// The endpoint answers again; an event now goes at once, whatever is still parked.
	recovered := insert(t, table, row{"flaky.event", "", "", `{"n":2}`})[0]
	waitFor(t, "the event after the recovery delivered", func() bool { return len(requestsFor(rcv, "/flaky", recovered)) == 1 })
	if got := metricValue(t, "hookpost_deliveries_parked_total") - parkedBefore; got != 1 {
		t.Errorf("hookpost_deliveries_parked_total grew by %v, want 1: the second failure in a row (the first is an object at once, the event after the recovery is attempted)", got)
	}
	if got := requestsFor(rcv, "/flaky", recovered)[0].Header.Get(delivery.HeaderAttempt); got != "1" {
		t.Errorf("the event after the recovery was sent as attempt %s, want its first attempt", got)
	}

	for _, id := range failed {
		var d *hookpostv1.WebhookDelivery
		waitFor(t, "the failed delivery retried and Succeeded", func() bool {
			var ok bool
			d, ok = getDelivery(t, ns, hookpostv1.DeliveryName("flaky", id))
			return ok && d.Status.Phase == hookpostv1.DeliverySucceeded
		})
		if d.Status.Attempts != 2 || d.Status.History[0].StatusCode != 503 || d.Status.History[1].StatusCode != 200 {
			t.Errorf("delivery of %s: %d attempts, history %+v; want the first attempt's 503, then 200", id, d.Status.Attempts, d.Status.History)
		}
		reqs := requestsFor(rcv, "/flaky", id)
		if len(reqs) != 2 || reqs[0].Header.Get(delivery.HeaderAttempt) != "1" || reqs[1].Header.Get(delivery.HeaderAttempt) != "2" {
			t.Errorf("receiver got %d requests for %s, want attempt 1 then attempt 2", len(reqs), id)
		}
	}
	waitFor(t, "the parked table empty", func() bool { return len(parkedEvents(t, "ledger_"+table)) == 0 })
}

// requestsFor returns the requests rcv got on path for event id, in order.
func requestsFor(rcv *harness.Receiver, path, id string) []harness.Received {
	var out []harness.Received
	for _, r := range rcv.Requests(path) {
		if r.Header.Get(delivery.HeaderEventID) == id {
			out = append(out, r)
		}
	}
	return out
}

// TestOnlyMatchesParkedPastACapHoldNewMatchesBehindThem: a match parked past a cap holds its subscription's next
// matches behind it (they arrive in order once there is room); one parked for its endpoint (circuit open,
// hanging, failed first attempts) does not, so a recovered endpoint's new events go at once while the row drains.
func TestOnlyMatchesParkedPastACapHoldNewMatchesBehindThem(t *testing.T) {
	_, table := newOutbox(t, postgres.Options{})
	w := newLedger(t, table)
	caps := ingest.NewCaps(ingest.CapsOptions{PerSubscription: 1, Total: 100, Unfinished: ingest.NewUnfinished(nil), Parking: w.Parking()})
	ctx := context.Background()
	event := func(id string) *source.Event {
		return &source.Event{ID: id, Type: "order.created", OccurredAt: time.Now(), Data: []byte(`{}`)}
	}

	failing := &ingest.Subscription{Namespace: "shop", Name: "failing", UID: "uid-failing"}
	if parked, err := caps.Park(ctx, failing, event("for-endpoint"), nil); !parked || err != nil {
		t.Fatalf("Park for the endpoint: parked %v, %v", parked, err)
	}
	if admitted, err := caps.Admit(ctx, failing, event("after-endpoint")); !admitted || err != nil {
		t.Errorf("a match after one parked for its endpoint: admitted %v (%v), want it dispatched", admitted, err)
	}

	full := &ingest.Subscription{Namespace: "shop", Name: "full", UID: "uid-full"}
	release, admitted, err := caps.Hold(ctx, full, event("at-cap"))
	if !admitted || err != nil {
		t.Fatalf("the first match below the cap of 1: admitted %v, %v", admitted, err)
	}
	if admitted, err := caps.Admit(ctx, full, event("past-cap")); admitted || err != nil {
		t.Fatalf("a match past the cap: admitted %v (%v), want it parked", admitted, err)
	}
	release() // room again, but a match is parked past the cap
	if admitted, err := caps.Admit(ctx, full, event("behind")); admitted || err != nil {
		t.Errorf("a match after one parked past the cap: admitted %v (%v), want it parked behind", admitted, err)
	}
	if got, want := parkedEvents(t, "ledger_"+table), []string{"for-endpoint", "past-cap", "behind"}; !slices.Equal(got, want) {
		t.Errorf("parked %v, want %v", got, want)
	}
}
