package e2e

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/source/postgres"
)

// maxKills bounds how often the test kills the operator looking for a kill that lands mid-batch.
const maxKills = 4

// TestOperatorKilledMidBatch SIGKILLs the operator while it holds a claimed outbox batch whose deliveries are
// partly created, restarts it, and checks that every event still ends as exactly one delivery per matching
// subscription: the killed claim is released with its connection, the rows are claimed again, and the
// deliveries created before the kill come back as AlreadyExists instead of twice.
func TestOperatorKilledMidBatch(t *testing.T) {
	const events = 5000
	tb := newTestbed(t)
	ob := startOutbox(t)
	tb.subscribeOverlapping()
	// Every event is in the outbox, in one transaction, before the operator starts; the subscriptions exist
	// already, so the events occur after them, and they become Ready once the operator runs.
	ob.insertMixed(tb.ctx, 0, events)
	want := tb.expected(ob.events(tb.ctx))

	op := tb.startOperator("operator", ob.operatorArgs()...)
	for kill := 1; ; kill++ {
		// Some rows done, some pending, and more deliveries than the done rows account for: a claimed batch is
		// partly dispatched, after earlier ones were acknowledged. Kill now.
		waitUntil(t, quiescentTimeout, "a claimed batch with part of its deliveries created", func() (bool, string) {
			s := tb.batchState(ob, want)
			return s.done > 0 && s.pending > 0 && s.deliveries > s.forDoneRows, s.String()
		})
		op.Kill()
		s := tb.batchState(ob, want)
		t.Logf("SIGKILL %d: %s, %d requests received", kill, s, len(tb.recv.Requests("")))
		if s.pending == 0 {
			t.Fatalf("the operator ingested all %d events before a kill landed mid-batch: raise the event count", events)
		}
		time.Sleep(time.Second)
		if err := op.Start(); err != nil {
			t.Fatalf("restart the operator: %v", err)
		}
		if s.deliveries > s.forDoneRows {
			break // the kill landed on an open batch
		}
		if kill == maxKills {
			t.Fatalf("none of %d kills landed while a batch was partly dispatched", maxKills)
		}
	}
	tb.waitQuiescent(want, ob.drained(tb.ctx))
	tb.assertExactlyOnce(want)
}

// batchState relates the deliveries that exist to the outbox rows marked done.
type batchState struct {
	done, pending int
	// deliveries exist in the namespace; forDoneRows of them are due to rows already marked done.
	deliveries, forDoneRows int
	err                     error
}

func (s batchState) String() string {
	if s.err != nil {
		return s.err.Error()
	}
	return fmt.Sprintf("outbox %d done, %d pending; %d deliveries, %d of them for done rows", s.done, s.pending, s.deliveries, s.forDoneRows)
}

// batchState counts the deliveries first and the done rows after, so deliveries beyond what the done rows account
// for were made for rows still claimed (or pending) when they were counted.
func (tb *testbed) batchState(ob *outbox, want map[string]map[string]bool) batchState {
	var s batchState
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(hookpostv1.GroupVersion.WithKind("WebhookDeliveryList"))
	if s.err = tb.c.List(tb.ctx, list, client.InNamespace(tb.ns)); s.err != nil {
		return s
	}
	s.deliveries = len(list.Items)
	rows, err := ob.pool.Query(tb.ctx, "SELECT event_id::text, status FROM "+postgres.DefaultTable)
	if err != nil {
		s.err = err
		return s
	}
	defer rows.Close()
	for rows.Next() {
		var id, status string
		if s.err = rows.Scan(&id, &status); s.err != nil {
			return s
		}
		switch status {
		case "pending":
			s.pending++
		case "done":
			s.done++
			for _, ids := range want {
				if ids[id] {
					s.forDoneRows++
				}
			}
		}
	}
	s.err = rows.Err()
	return s
}
