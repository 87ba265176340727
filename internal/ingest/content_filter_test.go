package ingest_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// TestContentFilterDeliversOnlyTheEventsItAccepts: of five outbox events, the subscription filtering on
// data.amount > 100 receives the two above 100 (not the one without an amount, which its filter cannot decide);
// the one without a filter receives all five, and the one whose filter does not compile receives none.
func TestContentFilterDeliversOnlyTheEventsItAccepts(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	ns := namespace(t)
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	readySubscription(t, fixtures.Subscription(ns, "big", rcv.URL+"/big", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.FilterExpression("data.amount > 100")))
	readySubscription(t, fixtures.Subscription(ns, "all", rcv.URL+"/all", fixtures.Events("order.*"), fixtures.InsecureHTTP()))
	subscribe(t, fixtures.Subscription(ns, "broken", rcv.URL+"/broken", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.FilterExpression("amount > 100")))

	ids := insert(t, table,
		row{"order.created", "7", "", `{"amount": 50}`},
		row{"order.created", "7", "", `{"amount": 150}`},
		row{"order.paid", "7", "", `{"amount": 100}`},
		row{"order.paid", "8", "", `{"amount": 101.5, "currency": "EUR"}`},
		row{"order.created", "7", "", `{"note": "no amount"}`},
	)
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	waitFor(t, "five requests to the unfiltered subscription", func() bool { return len(rcv.Requests("/all")) >= 5 })

	received := func(path string) []string {
		var got []string
		for _, r := range rcv.Requests(path) {
			got = append(got, r.Header.Get(delivery.HeaderEventID))
		}
		sort.Strings(got)
		return got
	}
	if got, want := received("/big"), sortedCopy([]string{ids[1], ids[3]}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("filtered subscription received %v, want the events with amount 150 and 101.5: %v", got, want)
	}
	if got, want := received("/all"), sortedCopy(ids); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("unfiltered subscription received %v, want every event %v", got, want)
	}
	if got := received("/broken"); len(got) != 0 {
		t.Errorf("subscription whose filter does not compile received %v, want nothing", got)
	}
	// Nothing waits for later either: a filtered-out event makes no WebhookDelivery.
	for _, d := range deliveries(t, ns) {
		t.Errorf("unexpected delivery object %s: every attempt succeeded or was filtered out", d)
	}
}
