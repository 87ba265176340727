package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestPostgresKilledMidRun kills PostgreSQL (every backend, as a crash would) while the operator ingests, starts
// it again and inserts more: the operator must ride out the outage without exiting, its open claim comes back
// when its lease runs out, and every event, from before and after the outage, reaches each matching
// subscription's receiver, with a ledger row, and never gets two deliveries.
func TestPostgresKilledMidRun(t *testing.T) {
	tb := newTestbed(t)
	ob := startOutbox(t)
	tb.subscribeOverlapping()
	op := tb.startOperator("operator", ob.operatorArgs()...)
	tb.waitReady()

	ob.insertMixed(tb.ctx, 0, 1500)
	waitUntil(t, quiescentTimeout, "the operator to finish a first outbox batch", func() (bool, string) {
		counts, err := ob.statusCounts(tb.ctx)
		if err != nil {
			return false, err.Error()
		}
		return counts["done"] > 0, fmt.Sprint(counts)
	})
	counts, _ := ob.statusCounts(tb.ctx)
	ob.pg.Kill()
	t.Logf("Killed PostgreSQL with outbox rows %v", counts)
	time.Sleep(3 * time.Second)
	if err := ob.pg.Start(); err != nil {
		t.Fatalf("start postgres again: %v", err)
	}
	ob.insertMixed(tb.ctx, 1500, 1000)
	want := tb.expected(ob.events(tb.ctx))

	tb.waitQuiescent(want, ob.drained(tb.ctx))
	tb.assertDelivered(want)
	ob.assertLedger(tb, want)
	if !alive(op) {
		t.Errorf("the operator exited during the PostgreSQL outage; it should have retried")
	}
}
