package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/api/meta"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// TestRateLimitedSubscriptionIsHandedOverWhileOthersFlow: ten events match a subscription limited to 1 per second
// (burst 1) and an unlimited one on the same receiver. The operator's clock stands still (a fake clock), so the
// limit allows exactly one start: the limited subscription gets one first attempt and its nine other matches become
// Pending deliveries, handed to the delivery controller without an attempt (the batch does not wait for them),
// while the unlimited subscription gets all ten. Once the clock moves past their booked turns, each of the nine
// arrives exactly once, as attempt 1: waiting spent no retry.
func TestRateLimitedSubscriptionIsHandedOverWhileOthersFlow(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	ns := namespace(t)
	clk := clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour, clock: clk, namespace: ns}, src)
	readySubscription(t, fixtures.Subscription(ns, "limited", rcv.URL+"/limited", fixtures.Events("*"), fixtures.InsecureHTTP(), fixtures.RateLimit(1, 1)))
	readySubscription(t, fixtures.Subscription(ns, "free", rcv.URL+"/free", fixtures.Events("*"), fixtures.InsecureHTTP()))

	var rows []row
	for i := range 10 {
		rows = append(rows, row{"order.created", "", "", fmt.Sprintf(`{"order_id":%d}`, i)})
	}
	ids := insert(t, table, rows...)
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	waitFor(t, "ten requests to the unlimited subscription", func() bool { return len(rcv.Requests("/free")) == 10 })
	held := func() (pending, other int) {
		list := &hookpostv1.WebhookDeliveryList{}
		if err := cp.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, d := range list.Items {
			if d.Spec.SubscriptionName != "limited" {
				other++
				continue
			}
			if d.Status.Attempts == 0 && d.Status.Phase != hookpostv1.DeliveryFailed {
				pending++
			}
		}
		return pending, other
	}
	waitFor(t, "nine deliveries of the limited subscription, none attempted", func() bool { p, _ := held(); return p == 9 })
	if _, other := held(); other != 0 {
		t.Errorf("%d deliveries of the unlimited subscription were written; its first attempts all succeeded and need none", other)
	}
	// The clock stands still: no second start however long we look.
	for range 20 {
		if n := len(rcv.Requests("/limited")); n != 1 {
			t.Fatalf("the limited subscription's receiver got %d requests while its limit allowed 1", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var noted int
	list := &hookpostv1.WebhookDeliveryList{}
	if err := cp.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, d := range list.Items {
		if c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered); c != nil && c.Reason == hookpostv1.ReasonRateLimited {
			noted++
		}
	}
	if noted == 0 {
		t.Errorf("no held delivery says it waits for the rate limit (reason %s)", hookpostv1.ReasonRateLimited)
	}

	clk.Step(time.Minute)
	waitFor(t, "ten requests to the limited subscription", func() bool { return len(rcv.Requests("/limited")) >= 10 })
	waitFor(t, "nine held deliveries Succeeded at attempt 1", func() bool {
		list := &hookpostv1.WebhookDeliveryList{}
		_ = cp.Client.List(context.Background(), list, client.InNamespace(ns))
		n := 0
		for _, d := range list.Items {
			if d.Status.Phase == hookpostv1.DeliverySucceeded && d.Status.Attempts == 1 {
				n++
			}
		}
		return n == 9
	})
	seen := map[string]int{}
	for _, r := range rcv.Requests("/limited") {
		seen[r.Header.Get(delivery.HeaderEventID)]++
		if a := r.Header.Get(delivery.HeaderAttempt); a != "1" {
			t.Errorf("X-Hookpost-Attempt = %q, want 1: a wait for the rate limit is not an attempt", a)
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %s reached the limited subscription %d times, want once", id, seen[id])
		}
	}
}

// BenchmarkRateLimitEndToEnd measures spec.rateLimit through the whole operator, in-process (ingest making first
// attempts, the delivery controller), on the real clock with a real PostgreSQL outbox and a real receiver: events
// matching a subscription limited to 10/s (burst 1) and an unlimited one are inserted one per transaction at 30/s
// for 10 s. It reports what each subscription received during those 10 s: limited-events/s (expect 10 +- 10 %;
// the rest wait as WebhookDeliveries, drained at the same pace after the run) and unlimited-events/s (expect the
// 30/s offered: the limited backlog beside it does not slow it).
func BenchmarkRateLimitEndToEnd(b *testing.B) {
	const (
		offered = 30 // events per second
		runFor  = 10 * time.Second
	)
	for range b.N {
		rcv := harness.NewReceiver()
		ns := namespace(b)
		src, table := newOutbox(b, postgres.Options{})
		startOperator(b, operatorConfig{flushInterval: time.Hour, namespace: ns}, src)
		readySubscription(b, fixtures.Subscription(ns, "limited", rcv.URL+"/limited", fixtures.Events("*"), fixtures.InsecureHTTP(), fixtures.RateLimit(10, 1)))
		readySubscription(b, fixtures.Subscription(ns, "free", rcv.URL+"/free", fixtures.Events("*"), fixtures.InsecureHTTP()))

		// One connection for the run, a transaction of offered/10 rows every 100 ms: a connection per row cannot
		// keep up with 30/s on a busy machine.
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pg.DSN())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		end := start.Add(runFor)
		inserted := 0
		for tick := 0; time.Now().Before(end); tick++ {
			time.Sleep(time.Until(start.Add(time.Duration(tick) * 100 * time.Millisecond)))
			batch := &pgx.Batch{}
			for range offered / 10 {
				batch.Queue(postgres.InsertSQL("public", table), "order.created", nil, nil, fmt.Sprintf(`{"order_id":%d}`, inserted))
				inserted++
			}
			if err := conn.SendBatch(ctx, batch).Close(); err != nil {
				b.Fatal(err)
			}
		}
		_ = conn.Close(ctx)
		time.Sleep(time.Until(end))
		within := func(path string) int {
			n := 0
			for _, r := range rcv.Requests(path) {
				if r.At.Before(end) {
					n++
				}
			}
			return n
		}
		b.ReportMetric(float64(within("/limited"))/runFor.Seconds(), "limited-events/s")
		b.ReportMetric(float64(within("/free"))/runFor.Seconds(), "unlimited-events/s")
		b.ReportMetric(float64(inserted)/runFor.Seconds(), "offered-events/s")
		rcv.Close()
	}
}
