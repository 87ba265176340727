package e2e

import (
	"fmt"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// hangingEndpoints is how many endpoints the hanging tenant has, each on a host (port) of its own: with the
// default 8 attempts per host they could hold all 64 global slots.
const hangingEndpoints = 8

// TestHangingTenantDoesNotStarveOthers gives one tenant's namespace eight endpoints that never answer (each
// attempt hangs for the subscription's whole 60 s timeout) and another namespace one healthy endpoint, then
// publishes events both receive. Every healthy delivery must arrive while the hanging attempts still hang: the
// hanging tenant holds at most half the global slots (--max-attempts-per-namespace), a full host or namespace is
// not waited for, and a batch waiting on hanging attempts gives its place to the next.
func TestHangingTenantDoesNotStarveOthers(t *testing.T) {
	ob := startOutbox(t)
	tb := newTestbed(t)
	tb.subscribe("healthy", func(producedEvent) bool { return true }, fixtures.Events("*"))

	hangingNS := tb.ns + "-hanging"
	if err := harness.CreateNamespaceForAllTenants(tb.ctx, tb.c, hangingNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tb.c.DeleteAllOf(tb.ctx, &hookpostv1.WebhookSubscription{}, client.InNamespace(hangingNS))
		_ = tb.c.DeleteAllOf(tb.ctx, &hookpostv1.WebhookDelivery{}, client.InNamespace(hangingNS))
	})
	var hanging []*harness.Receiver
	for i := range hangingEndpoints {
		r := harness.NewReceiver()
		t.Cleanup(r.Close) // releases the hanging requests
		r.Script("/hang", harness.Response{Status: 200, Delay: time.Hour})
		hanging = append(hanging, r)
		sub := fixtures.Subscription(hangingNS, fmt.Sprintf("hang-%d", i), r.URL+"/hang", fixtures.InsecureHTTP(),
			fixtures.Events("*"), fixtures.Timeout(60*time.Second), fixtures.HistoryLimits(100000, 100000))
		if err := tb.c.Create(tb.ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	tb.startOperator("op", ob.operatorArgs()...)
	tb.waitReady()

	const events = 300
	ob.insertMixed(tb.ctx, 0, events)
	start := time.Now()
	want := tb.expected(ob.events(tb.ctx))["healthy"]
	hangingRequests := func() int {
		n := 0
		for _, r := range hanging {
			n += len(r.Requests("/hang"))
		}
		return n
	}
	// The hanging attempts time out after 60 s; everything healthy must be through well before that.
	waitUntil(t, 45*time.Second, "every healthy delivery while the hanging endpoints hang", func() (bool, string) {
		got := 0
		for id := range want {
			if tb.receivedIDs()["healthy"][id] > 0 {
				got++
			}
		}
		return got == len(want), fmt.Sprintf("%d of %d healthy events received, %d requests hanging", got, len(want), hangingRequests())
	})
	t.Logf("%d healthy events delivered in %s while %d requests hung", len(want), time.Since(start).Round(time.Millisecond), hangingRequests())

	// The hanging tenant reached its endpoints (this is not a test of a tenant that was never attempted), and
	// held no more than its share of the 64 global slots: none of its attempts has ended, so every request the
	// hanging receivers got is still in flight.
	if n := hangingRequests(); n == 0 || n > 64/2 {
		t.Errorf("hanging receivers hold %d requests, want between 1 and %d (half the global slots)", n, 64/2)
	}
	for id := range want {
		if tb.receivedIDs()["healthy"][id] == 0 {
			t.Fatalf("event %s not delivered to the healthy endpoint", id)
		}
	}
}
