package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

// malformedCollection marks rows a test inserts malformed on purpose, so they are left out of the expected events.
const malformedCollection = "malformed"

// outbox is a PostgreSQL cluster holding the outbox table, migrated by the test so it can insert before the
// operator starts.
type outbox struct {
	t    *testing.T
	pg   *harness.Postgres
	pool *pgxpool.Pool
}

func startOutbox(t *testing.T) *outbox {
	t.Helper()
	pg := harness.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(context.Background(), pg.DSN())
	if err != nil {
		t.Fatalf("connect to postgres: %v", err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, postgres.DDL("", "")); err != nil {
		t.Fatalf("migrate the outbox: %v", err)
	}
	return &outbox{t: t, pg: pg, pool: pool}
}

// operatorArgs are the flags that make the operator ingest from this outbox.
func (o *outbox) operatorArgs() []string {
	return []string{"--postgres-dsn=" + o.pg.DSN(), "--postgres-migrate"}
}

// insertMixed inserts n events, numbered from first, with COPY in one transaction. The transaction commits
// synchronously: the cluster runs with synchronous_commit=off, and a test that kills PostgreSQL must not lose
// events it already counts on.
func (o *outbox) insertMixed(ctx context.Context, first, n int) {
	o.t.Helper()
	rows := make([][]any, 0, n)
	for i := first; i < first+n; i++ {
		eventType, tenant := harness.MixedEvent(i)
		rows = append(rows, []any{eventType, tenant, "orders", json.RawMessage(fmt.Sprintf(`{"seq":%d}`, i))})
	}
	o.inTx(ctx, fmt.Sprintf("insert %d events", n), func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{postgres.DefaultTable},
			[]string{"event_type", "tenant_id", "collection", "payload"}, pgx.CopyFromRows(rows))
		return err
	})
}

// inTx runs fn in a synchronously committed transaction, retrying while PostgreSQL is just back from a restart.
func (o *outbox) inTx(ctx context.Context, what string, fn func(pgx.Tx) error) {
	o.t.Helper()
	if err := harness.CommitRetrying(ctx, o.pool, 20, fn); err != nil {
		o.t.Fatalf("%s: %v", what, err)
	}
}

// events reads back every well-formed event in the outbox, with the ids the database gave them.
func (o *outbox) events(ctx context.Context) []producedEvent {
	o.t.Helper()
	rows, err := o.pool.Query(ctx, `SELECT event_id::text, event_type, coalesce(tenant_id, '') FROM `+postgres.DefaultTable+
		` WHERE coalesce(collection, '') <> $1 ORDER BY id`, malformedCollection)
	if err != nil {
		o.t.Fatalf("read the outbox: %v", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (producedEvent, error) {
		var ev producedEvent
		return ev, r.Scan(&ev.ID, &ev.Type, &ev.Tenant)
	})
	if err != nil {
		o.t.Fatalf("read the outbox: %v", err)
	}
	return evs
}

// statusCounts counts the outbox rows by status.
func (o *outbox) statusCounts(ctx context.Context) (map[string]int, error) {
	return harness.OutboxStatusCounts(ctx, o.pool)
}

// drained is the outbox's sourceDrained: no row is pending.
func (o *outbox) drained(ctx context.Context) sourceDrained {
	return func() (bool, string) {
		counts, err := o.statusCounts(ctx)
		if err != nil {
			return false, fmt.Sprintf("count outbox rows: %v", err)
		}
		return counts["pending"] == 0, fmt.Sprintf("outbox rows by status %v", counts)
	}
}

// waitUntil polls cond until it holds, failing the test with what it last said after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertLedger waits until the delivery ledger (in the outbox's database, the operator's default) holds a success
// row for every expected (subscription, event) pair of the test's namespace, and none for a pair not expected.
// Pairs sent again after a crash have more than one, which is logged.
func (o *outbox) assertLedger(tb *testbed, want map[string]map[string]bool) {
	tb.t.Helper()
	var resent int
	waitUntil(tb.t, time.Minute, "a ledger success row for every pair", func() (bool, string) {
		rows, err := o.pool.Query(tb.ctx, `SELECT subscription, event_id, count(*) FROM `+ledgerpg.DefaultTable+`
WHERE namespace = $1 AND outcome = 'succeeded' GROUP BY subscription, event_id`, tb.ns)
		if err != nil {
			return false, err.Error()
		}
		got := map[string]map[string]int{}
		for rows.Next() {
			var sub, id string
			var n int
			if err := rows.Scan(&sub, &id, &n); err != nil {
				rows.Close()
				return false, err.Error()
			}
			if got[sub] == nil {
				got[sub] = map[string]int{}
			}
			got[sub][id] = n
		}
		rows.Close()
		missing, unexpected := 0, 0
		resent = 0
		for sub, ids := range want {
			for id := range ids {
				if got[sub][id] == 0 {
					missing++
				}
			}
		}
		for sub, ids := range got {
			for id, n := range ids {
				if !want[sub][id] {
					unexpected++
				}
				resent += n - 1
			}
		}
		if unexpected > 0 {
			tb.t.Fatalf("ledger has success rows for %d pairs this test does not expect", unexpected)
		}
		return missing == 0, fmt.Sprintf("%d pairs without a success row", missing)
	})
	tb.t.Logf("ledger: a success row for every pair; %d extra success rows (pairs sent again)", resent)
}
