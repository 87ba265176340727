package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

// TestTwoOperatorsShareOneOutbox runs two operators on one outbox: both ingest (leased claims) and make first
// attempts, only the elected leader runs the controllers. Every event reaches its receivers, none gets two
// deliveries, and the subscriptions count each exactly once. Two malformed rows among the events, a
// payload that is a JSON string and an empty event type, are set aside as rejected with an error naming the
// column, and the rows behind them flow.
func TestTwoOperatorsShareOneOutbox(t *testing.T) {
	const perTx, txs = 500, 4
	tb := newTestbed(t)
	ob := startOutbox(t)
	tb.subscribeOverlapping()
	args := append(ob.operatorArgs(), "--leader-elect", "--leader-election-namespace=default")
	// Each operator serves its metrics on a port of its own, to show how the two shared the outbox.
	metrics := []string{freeLoopbackAddr(t), freeLoopbackAddr(t)}
	for i, addr := range metrics {
		tb.startOperator(fmt.Sprintf("operator-%d", i+1), append(slices.Clone(args), "--metrics-bind-address="+addr)...)
	}
	tb.waitReady()

	insert := postgres.InsertSQL("", "")
	// Keyed by the good row they precede; the assertions below expect the error to name payload for the first
	// and event_type for the second.
	malformed := map[int]struct{ eventType, payload string }{
		100:         {"order.created", `"just a string"`},
		2*perTx + 7: {"", `{"seq":-1}`},
	}
	for k := 0; k < txs; k++ {
		ob.inTx(tb.ctx, "insert events", func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			for i := k * perTx; i < (k+1)*perTx; i++ {
				if m, ok := malformed[i]; ok {
					b.Queue(insert, m.eventType, "1", malformedCollection, json.RawMessage(m.payload))
				}
				eventType, tenant := harness.MixedEvent(i)
				b.Queue(insert, eventType, tenant, "orders", json.RawMessage(fmt.Sprintf(`{"seq":%d}`, i)))
			}
			return tx.SendBatch(tb.ctx, b).Close()
		})
	}
	want := tb.expected(ob.events(tb.ctx))

	tb.waitQuiescent(want, ob.drained(tb.ctx))
	tb.assertDelivered(want)
	tb.assertCounted(want)
	ob.assertLedger(tb, want)
	for i, addr := range metrics {
		ingested, err := scrapeCounter(tb.ctx, addr, `hookpost_events_ingested_total{source="postgres"}`)
		if err != nil {
			t.Errorf("operator-%d metrics: %v", i+1, err)
			continue
		}
		// Not asserted: which replica claims which batch is up to timing; the exactly-once checks above hold
		// whatever the split.
		t.Logf("operator-%d ingested %.0f events", i+1, ingested)
	}

	rows, err := ob.pool.Query(tb.ctx, "SELECT event_type, payload::text, status, coalesce(error, '') FROM "+postgres.DefaultTable+
		" WHERE collection = $1 ORDER BY id", malformedCollection)
	if err != nil {
		t.Fatalf("read malformed rows: %v", err)
	}
	type rejectedRow struct{ eventType, payload, status, error string }
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rejectedRow, error) {
		var x rejectedRow
		return x, r.Scan(&x.eventType, &x.payload, &x.status, &x.error)
	})
	if err != nil {
		t.Fatalf("read malformed rows: %v", err)
	}
	if len(got) != len(malformed) {
		t.Fatalf("%d malformed rows in the outbox, want %d", len(got), len(malformed))
	}
	for _, r := range got {
		column := "payload"
		if r.eventType == "" {
			column = "event_type"
		}
		if r.status != "rejected" || !strings.HasPrefix(r.error, column+":") {
			t.Errorf("malformed row (event_type %q, payload %s): status %q, error %q; want rejected with an error naming %s",
				r.eventType, r.payload, r.status, r.error, column)
		}
	}
	counts, err := ob.statusCounts(tb.ctx)
	if err != nil {
		t.Fatalf("count outbox rows: %v", err)
	}
	if counts["rejected"] != len(malformed) || counts["done"] != perTx*txs {
		t.Errorf("outbox rows by status %v, want %d done and %d rejected", counts, perTx*txs, len(malformed))
	}
}
