package e2e

import (
	"context"
	"testing"
	"time"
)

// outageAtStart is how long the operator runs before its dependencies come up: several of its waits.
const outageAtStart = 10 * time.Second

// TestOperatorStartedDuringAnOutageWaits starts the operator while kube-apiserver and the outbox's PostgreSQL are
// both down, as after a node or cluster restart. It must wait for them (not exit into a crash loop) and, once they
// answer, deliver every event, with nothing lost and no pair delivered twice.
func TestOperatorStartedDuringAnOutageWaits(t *testing.T) {
	tb := newTestbed(t)
	ob := startOutbox(t)
	tb.subscribeOverlapping()
	ob.insertMixed(tb.ctx, 0, 300)
	want := tb.expected(ob.events(tb.ctx))

	ob.pg.Stop()
	startAPIServer, err := suite.cp.StopAPIServer()
	if err != nil {
		t.Fatalf("stop kube-apiserver: %v", err)
	}
	op := tb.startOperator("operator", ob.operatorArgs()...)
	time.Sleep(outageAtStart)
	if !alive(op) {
		t.Fatalf("the operator exited while kube-apiserver and PostgreSQL were down; it should wait for them")
	}

	sctx, cancel := context.WithTimeout(tb.ctx, 2*time.Minute)
	defer cancel()
	if err := startAPIServer(sctx); err != nil {
		t.Fatalf("start kube-apiserver again: %v", err)
	}
	time.Sleep(3 * time.Second) // the operator gets past the API server and waits for PostgreSQL
	if !alive(op) {
		t.Fatalf("the operator exited while PostgreSQL was down; it should wait for it")
	}
	if err := ob.pg.Start(); err != nil {
		t.Fatalf("start postgres again: %v", err)
	}
	tb.waitReady()
	tb.waitQuiescent(want, ob.drained(tb.ctx))
	tb.assertDelivered(want)
	if !alive(op) {
		t.Errorf("the operator exited after its dependencies came back")
	}
}
