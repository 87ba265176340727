package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/source/postgres"
)

// maxKills bounds how often the test kills the operator looking for a kill that lands mid-batch.
const maxKills = 4

// TestOperatorKilledMidBatch SIGKILLs the operator while it holds a claimed outbox batch whose first attempts are
// partly made, restarts it, and checks that every event still reaches its receivers and never gets two
// deliveries: the killed claim's lease runs out, the rows are claimed again, and the pairs already sent are sent
// again (same X-Event-Id) while any delivery created before the kill comes back as AlreadyExists.
func TestOperatorKilledMidBatch(t *testing.T) {
	const events = 5000
	tb := newTestbed(t)
	ob := startOutbox(t)
	tb.subscribeOverlapping()
	// Every event is in the outbox, in one transaction, before the operator starts; the subscriptions exist
	// already, so the events occur after them, and they become Ready once the operator runs.
	ob.insertMixed(tb.ctx, 0, events)
	want := tb.expected(ob.events(tb.ctx))

	// A short lease brings the killed claim back quickly.
	op := tb.startOperator("operator", append(ob.operatorArgs(), "--postgres-claim-lease=3s")...)
	for kill := 1; ; kill++ {
		// Some rows done, some pending, and requests received for rows not yet done: a claimed batch is partly
		// attempted, after earlier ones were acknowledged. Kill now.
		waitUntil(t, quiescentTimeout, "a claimed batch with part of its first attempts made", func() (bool, string) {
			s := tb.batchState(ob)
			return s.done > 0 && s.pending > 0 && s.sentForPending > 0, s.String()
		})
		op.Kill()
		s := tb.batchState(ob)
		t.Logf("SIGKILL %d: %s", kill, s)
		if s.pending == 0 {
			t.Fatalf("the operator ingested all %d events before a kill landed mid-batch: raise the event count", events)
		}
		time.Sleep(time.Second)
		if err := op.Start(); err != nil {
			t.Fatalf("restart the operator: %v", err)
		}
		if s.sentForPending > 0 {
			break // the kill landed on an open batch
		}
		if kill == maxKills {
			t.Fatalf("none of %d kills landed while a batch was partly attempted", maxKills)
		}
	}
	tb.waitQuiescent(want, ob.drained(tb.ctx))
	tb.assertDelivered(want)
	ob.assertLedger(tb, want)
}

// batchState relates the requests the receiver got to the outbox rows still pending.
type batchState struct {
	done, pending int
	// sentForPending counts events received at least once whose row is still pending: attempted in a batch not
	// yet acknowledged.
	sentForPending int
	err            error
}

func (s batchState) String() string {
	if s.err != nil {
		return s.err.Error()
	}
	return fmt.Sprintf("outbox %d done, %d pending; %d pending events already received", s.done, s.pending, s.sentForPending)
}

// batchState reads the receiver first and the rows after, so a received event whose row is pending was attempted
// before its batch was acknowledged.
func (tb *testbed) batchState(ob *outbox) batchState {
	var s batchState
	received := map[string]bool{}
	for _, req := range tb.recv.Requests("") {
		received[req.Header.Get(delivery.HeaderEventID)] = true
	}
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
			if received[id] {
				s.sentForPending++
			}
		case "done":
			s.done++
		}
	}
	s.err = rows.Err()
	return s
}
