package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// apiServerDown is how long kube-apiserver stays stopped: several ingest batches and success flushes.
const apiServerDown = 15 * time.Second

// TestAPIServerRestartedMidRun stops kube-apiserver while the operator ingests from the outbox and starts it
// again later. A first attempt that succeeds needs no API write, so events keep reaching the receivers while
// the API server is down; the counts the operator could not write meanwhile are written once it is back; nothing
// is lost and no pair gets two deliveries.
func TestAPIServerRestartedMidRun(t *testing.T) {
	tb := newTestbed(t)
	ob := startOutbox(t)
	tb.subscribeOverlapping()
	op := tb.startOperator("operator", ob.operatorArgs()...)
	tb.waitReady()

	ob.insertMixed(tb.ctx, 0, 500)
	waitUntil(t, quiescentTimeout, "the operator to finish a first outbox batch", func() (bool, string) {
		counts, err := ob.statusCounts(tb.ctx)
		if err != nil {
			return false, err.Error()
		}
		return counts["done"] > 0, fmt.Sprint(counts)
	})
	start, err := suite.cp.StopAPIServer()
	if err != nil {
		t.Fatalf("stop kube-apiserver: %v", err)
	}
	stoppedAt := time.Now()
	before := len(tb.recv.Requests(""))
	ob.insertMixed(tb.ctx, 500, 1000)
	waitUntil(t, apiServerDown, "events received while kube-apiserver is down", func() (bool, string) {
		n := len(tb.recv.Requests(""))
		return n-before >= 500, fmt.Sprintf("%d requests since kube-apiserver stopped", n-before)
	})
	during := len(tb.recv.Requests("")) - before
	time.Sleep(time.Until(stoppedAt.Add(apiServerDown)))
	counts, _ := ob.statusCounts(tb.ctx)
	t.Logf("kube-apiserver down for %s: the receiver got %d requests meanwhile; outbox rows %v", apiServerDown, during, counts)
	sctx, cancel := context.WithTimeout(tb.ctx, 2*time.Minute)
	defer cancel()
	if err := start(sctx); err != nil {
		t.Fatalf("start kube-apiserver again: %v", err)
	}
	ob.insertMixed(tb.ctx, 1500, 500)
	want := tb.expected(ob.events(tb.ctx))

	tb.waitQuiescent(want, ob.drained(tb.ctx))
	tb.assertDelivered(want)
	tb.assertCounted(want)
	ob.assertLedger(tb, want)
	if !alive(op) {
		t.Errorf("the operator exited while kube-apiserver was down; it should have kept delivering")
	}
}
