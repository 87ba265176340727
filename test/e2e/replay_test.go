package e2e

import (
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
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// TestWebhookReplaysOfPrunedDeliveriesAndOfTheOutbox runs the operator binary on an outbox, whose database holds
// the ledger too (its default): three events the receiver rejects fail, and the failed history limit of 1 prunes
// two of them. A WebhookReplay of the Failed deliveries sends all three again (two made again from the ledger),
// and a WebhookReplay re-reading the outbox from before the events sends them a third time.
func TestWebhookReplaysOfPrunedDeliveriesAndOfTheOutbox(t *testing.T) {
	tb := newTestbed(t)
	ob := startOutbox(t)
	tb.recv.Script("/orders", harness.Response{Status: 400})
	tb.subscribe("orders", nil, fixtures.Events("order.*"), fixtures.HistoryLimits(10, 1))
	tb.startOperator("op", ob.operatorArgs()...)
	tb.waitReady()

	since := time.Now().Truncate(time.Second)
	ob.inTx(tb.ctx, "insert events", func(tx pgx.Tx) error {
		for i := 1; i <= 3; i++ {
			if _, err := tx.Exec(tb.ctx, postgres.InsertSQL("", ""), "order.created", "1", nil, json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
				return err
			}
		}
		return nil
	})
	waitUntil(t, readyTimeout, "two Failed deliveries pruned", func() (bool, string) {
		sub := &hookpostv1.WebhookSubscription{}
		if err := tb.c.Get(tb.ctx, client.ObjectKey{Namespace: tb.ns, Name: "orders"}, sub); err != nil {
			return false, err.Error()
		}
		return sub.Status.PrunedFailed == 2, fmt.Sprintf("status %+v", sub.Status)
	})
	tb.recv.Script("/orders", harness.Response{Status: 200})

	replay := func(name string, spec hookpostv1.WebhookReplaySpec) {
		t.Helper()
		rp := &hookpostv1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: tb.ns, Name: name}, Spec: spec}
		if err := tb.c.Create(tb.ctx, rp); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, readyTimeout, name+" Complete", func() (bool, string) {
			if err := tb.c.Get(tb.ctx, client.ObjectKeyFromObject(rp), rp); err != nil {
				return false, err.Error()
			}
			return meta.IsStatusConditionTrue(rp.Status.Conditions, hookpostv1.ConditionComplete), fmt.Sprintf("status %+v", rp.Status)
		})
		if st := rp.Status; st.Selected != 3 || st.Succeeded != 3 {
			t.Errorf("%s: status %+v, want 3 selected and succeeded", name, st)
		}
	}
	replay("dead-letters", hookpostv1.WebhookReplaySpec{
		Selector: hookpostv1.ReplaySelector{SubscriptionName: "orders", Phases: []hookpostv1.DeliveryPhase{hookpostv1.DeliveryFailed}},
		Rate:     hookpostv1.ReplayRate{PerSecond: 100},
	})
	replay("outbox", hookpostv1.WebhookReplaySpec{
		Source: &hookpostv1.ReplaySource{Kind: hookpostv1.ReplaySourceOutbox, Since: metav1.NewTime(since)},
		Rate:   hookpostv1.ReplayRate{PerSecond: 100},
	})

	perEvent := map[string]int{}
	for _, r := range tb.recv.Requests("/orders") {
		if r.Header.Get(delivery.HeaderTest) != "" {
			t.Errorf("event %s sent as a test event", r.Header.Get(delivery.HeaderEventID))
		}
		perEvent[r.Header.Get(delivery.HeaderEventID)]++
	}
	var counts []int
	for _, n := range perEvent {
		counts = append(counts, n)
	}
	sort.Ints(counts)
	if fmt.Sprint(counts) != "[3 3 3]" {
		t.Errorf("requests per event %v, want each of the 3 events 3 times: first, from the ledger, from the outbox", perEvent)
	}
}
