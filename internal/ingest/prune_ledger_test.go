package ingest_test

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// TestFailedDeliveriesArePrunedOnlyOnceTheLedgerHasThem: three deliveries fail (404, not retried) beyond a
// failedLimit of 1 while the ledger cannot be written (its table does not exist yet). The subscription counts
// them and prunes none: the objects are the only durable record of those attempts. Once the ledger can be
// written, the two oldest are pruned, and the ledger holds their attempts.
func TestFailedDeliveriesArePrunedOnlyOnceTheLedgerHasThem(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/gone", harness.Response{Status: 404})
	ns := namespace(t)
	src, table := newOutbox(t, postgres.Options{})
	// Not migrated: every write fails until the test creates the table.
	w, err := ledgerpg.New(context.Background(), ledgerpg.Options{DSN: pg.DSN(), Table: "ledger_" + table, Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	startOperator(t, operatorConfig{flushInterval: time.Hour, ledger: w}, src)
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
