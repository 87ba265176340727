package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookpost/hookpost/internal/source"
	"github.com/hookpost/hookpost/internal/source/postgres"
)

// testLease is short enough that a lease runs out within a test, long enough that a busy machine still runs
// the heartbeat (every third of it) in time.
const testLease = time.Second

func eventIDs(events []source.Event) []string {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	return ids
}

// waitFor polls cond until it holds, failing the test after 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 30s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queryInt runs a query returning one integer.
func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(testContext(t), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// latestLease returns the latest claimed_until of the table, as the database sees it.
func latestLease(t *testing.T, conn *pgx.Conn, table string) time.Time {
	t.Helper()
	var lease time.Time
	if err := conn.QueryRow(testContext(t), "SELECT max(claimed_until) FROM "+table).Scan(&lease); err != nil {
		t.Fatalf("read lease: %v", err)
	}
	return lease
}

func nextBatch(t *testing.T, src *postgres.Source, max int) source.Batch {
	t.Helper()
	b, err := src.Next(testContext(t), max)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return b
}

func expectSameEvents(t *testing.T, got, want []source.Event) {
	t.Helper()
	if g, w := eventIDs(got), eventIDs(want); !slices.Equal(g, w) {
		t.Fatalf("got events %v, want %v", g, w)
	}
}

func TestClaimedBatchHoldsNoLocksOrTransaction(t *testing.T) {
	app := fmt.Sprintf("hookpost-lease-test-%d", time.Now().UnixNano())
	src := newSource(t, postgres.Options{DSN: sharedPostgres.DSN() + "&application_name=" + app, ClaimLease: testLease})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	insertEvents(t, conn, "", table, orderRows(0, 3)...)

	b := nextBatch(t, src, 10)
	ids := eventIDs(b.Events())
	first := latestLease(t, conn, table)
	// Once the heartbeat has extended every row's lease, the batch has been open for a while.
	waitFor(t, "the lease to be extended", func() bool {
		return queryInt(t, conn, "SELECT count(*) FROM "+table+" WHERE claimed_until > $1", first) == len(ids)
	})

	// A bug would make these wait for the source's transaction: fail instead.
	if _, err := conn.Exec(ctx, "SET lock_timeout = '5s'"); err != nil {
		t.Fatalf("set lock timeout: %v", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if n := queryIntTx(t, tx, "WITH locked AS (SELECT id FROM "+table+" WHERE event_id = ANY($1::uuid[]) FOR UPDATE NOWAIT) SELECT count(*) FROM locked", ids); n != len(ids) {
		t.Fatalf("locked %d of the claimed rows, want %d", n, len(ids))
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	tag, err := conn.Exec(ctx, "UPDATE "+table+" SET error = 'touched by another session' WHERE event_id = ANY($1::uuid[])", ids)
	if err != nil || tag.RowsAffected() != int64(len(ids)) {
		t.Fatalf("update the claimed rows from another session: %v (%d rows)", err, tag.RowsAffected())
	}

	sessions := queryInt(t, conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app)
	idleInTx := queryInt(t, conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'", app)
	if sessions == 0 {
		t.Fatalf("no session named %s: the check below would prove nothing", app)
	}
	if idleInTx != 0 {
		t.Fatalf("%d of the source's %d sessions are idle in a transaction while a batch is open", idleInTx, sessions)
	}

	if err := b.Ack(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if counts := countByStatus(t, conn, table); counts["done"] != len(ids) || len(counts) != 1 {
		t.Fatalf("status counts %v, want %d done", counts, len(ids))
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM "+table+" WHERE claimed_until IS NOT NULL OR error IS NOT NULL"); n != 0 {
		t.Fatalf("%d done rows keep a lease or an error", n)
	}
}

func queryIntTx(t *testing.T, tx pgx.Tx, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := tx.QueryRow(testContext(t), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestOpenBatchKeepsOtherSourcesOffItsRowsPastTheLease(t *testing.T) {
	first := newSource(t, postgres.Options{ClaimLease: testLease})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	second := sameTable(t, postgres.Options{DSN: sharedPostgres.DSN(), Table: table, ClaimLease: testLease, PollInterval: 50 * time.Millisecond})
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	insertEvents(t, conn, "", table, orderRows(0, 3)...)

	held := nextBatch(t, first, 10)
	claimedUntil := latestLease(t, conn, table)
	// Without the heartbeat the first lease would have run out a whole lease ago.
	waitFor(t, "two leases to pass in the database", func() bool {
		return queryInt(t, conn, "SELECT (now() > $1::timestamptz + make_interval(secs => $2))::int", claimedUntil, testLease.Seconds()) == 1
	})
	insertEvents(t, conn, "", table, orderRows(3, 2)...)

	// Rows are claimed in id order, so the held rows would come first had their lease run out.
	other := nextBatch(t, second, 10)
	for i, ev := range other.Events() {
		if got := orderID(t, ev); got != 3+i {
			t.Fatalf("second source got order_id %d at %d, want the rows inserted later (3, 4)", got, i)
		}
	}
	if len(other.Events()) != 2 {
		t.Fatalf("second source got %d events, want 2", len(other.Events()))
	}
	for _, b := range []source.Batch{held, other} {
		if err := b.Ack(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if counts := countByStatus(t, conn, table); counts["done"] != 5 || len(counts) != 1 {
		t.Fatalf("status counts %v, want 5 done", counts)
	}
}

func TestRowsOfACrashedSourceAreClaimedAfterTheLease(t *testing.T) {
	crashed := newSource(t, postgres.Options{ClaimLease: testLease})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	survivor := sameTable(t, postgres.Options{DSN: sharedPostgres.DSN(), Table: table, ClaimLease: testLease, PollInterval: 50 * time.Millisecond})
	conn := connect(t, sharedPostgres.DSN())
	insertEvents(t, conn, "", table, orderRows(0, 3)...)

	lost := nextBatch(t, crashed, 10)
	postgres.Crash(crashed)
	if n := queryInt(t, conn, "SELECT count(*) FROM "+table+" WHERE claimed_until IS NOT NULL"); n != 3 {
		t.Fatalf("%d rows keep their lease after the crash, want 3: a crash gives nothing back", n)
	}

	again := nextBatch(t, survivor, 10)
	expectSameEvents(t, again.Events(), lost.Events())
	if err := again.Ack(testContext(t)); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if counts := countByStatus(t, conn, table); counts["done"] != 3 || len(counts) != 1 {
		t.Fatalf("status counts %v, want 3 done", counts)
	}
}

func TestCloseGivesOpenBatchesBackAtOnce(t *testing.T) {
	closing := newSource(t, postgres.Options{ClaimLease: time.Hour})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	other := sameTable(t, postgres.Options{DSN: sharedPostgres.DSN(), Table: table, PollInterval: 50 * time.Millisecond})
	conn := connect(t, sharedPostgres.DSN())
	insertEvents(t, conn, "", table, orderRows(0, 3)...)

	open := nextBatch(t, closing, 10)
	if err := closing.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := open.Ack(testContext(t)); err == nil || !strings.Contains(err.Error(), "settled") {
		t.Fatalf("ack after close: %v, want an already-settled error", err)
	}
	// The lease was an hour: only giving back makes the rows claimable within the test.
	again := nextBatch(t, other, 10)
	expectSameEvents(t, again.Events(), open.Events())
	if err := again.Ack(testContext(t)); err != nil {
		t.Fatalf("ack: %v", err)
	}
}

func TestNackedRowsComeBackToAnySourceAfterTheDelay(t *testing.T) {
	nacking := newSource(t, postgres.Options{})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	other := sameTable(t, postgres.Options{DSN: sharedPostgres.DSN(), Table: table, PollInterval: 50 * time.Millisecond})
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	insertEvents(t, conn, "", table, orderRows(0, 3)...)

	b := nextBatch(t, nacking, 10)
	if err := b.Nack(ctx, time.Hour, errors.New("api server unavailable")); err != nil {
		t.Fatalf("nack: %v", err)
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM "+table+" WHERE claimed_until BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'"); n != 3 {
		t.Fatalf("%d rows leased for the hour's delay, want 3", n)
	}
	expectNothingPending(t, other)

	// Let the hour pass, as far as the lease is concerned.
	if _, err := conn.Exec(ctx, "UPDATE "+table+" SET claimed_until = claimed_until - interval '1 hour'"); err != nil {
		t.Fatalf("move the lease back: %v", err)
	}
	again := nextBatch(t, other, 10)
	expectSameEvents(t, again.Events(), b.Events())
	if err := again.Ack(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	expectNothingPending(t, other)
}

func TestLostLeaseNackLeavesTheNewClaimAloneAndAckIsHarmless(t *testing.T) {
	first := newSource(t, postgres.Options{})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	second := sameTable(t, postgres.Options{DSN: sharedPostgres.DSN(), Table: table, PollInterval: 50 * time.Millisecond})
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	// expireLeases plays a first source whose heartbeat failed for longer than the lease.
	expireLeases := func() {
		t.Helper()
		if _, err := conn.Exec(ctx, "UPDATE "+table+" SET claimed_until = now() - interval '1 second' WHERE claimed_until IS NOT NULL"); err != nil {
			t.Fatalf("expire leases: %v", err)
		}
	}

	insertEvents(t, conn, "", table, orderRows(0, 3)...)
	stale := nextBatch(t, first, 10)
	expireLeases()
	taken := nextBatch(t, second, 10)
	expectSameEvents(t, taken.Events(), stale.Events())
	if err := stale.Nack(ctx, 0, errors.New("api server unavailable")); err != nil {
		t.Fatalf("nack of a lost batch: %v", err)
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM "+table+" WHERE claimed_until > now()"); n != 3 {
		t.Fatalf("%d rows still leased to the second source after the first nacked, want 3", n)
	}
	if err := taken.Ack(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}

	// At least once: both sources ack the same rows, and the rows are simply done.
	insertEvents(t, conn, "", table, orderRows(3, 3)...)
	stale = nextBatch(t, first, 10)
	expireLeases()
	taken = nextBatch(t, second, 10)
	expectSameEvents(t, taken.Events(), stale.Events())
	for _, b := range []source.Batch{stale, taken} {
		if err := b.Ack(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if counts := countByStatus(t, conn, table); counts["done"] != 6 || len(counts) != 1 {
		t.Fatalf("status counts %v, want 6 done", counts)
	}
	expectNothingPending(t, second)
}

// previousDDL is the table and pending index as Hookpost created them before claims were leased.
const previousDDL = `CREATE TABLE %[1]s (
    id           bigserial   PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    event_type   text        NOT NULL,
    tenant_id    text,
    collection   text,
    payload      jsonb       NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'rejected')),
    error        text,
    processed_at timestamptz
);
CREATE INDEX %[2]s ON %[1]s (id) WHERE status = 'pending';`

func TestMigrateAddsTheLeaseColumnToAPreviousTable(t *testing.T) {
	table := fmt.Sprintf("outbox_%d", tableCounter.Add(1))
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	if _, err := conn.Exec(ctx, fmt.Sprintf(previousDDL, table, table+"_pending_idx")); err != nil {
		t.Fatalf("create the previous table: %v", err)
	}
	insertEvents(t, conn, "", table, orderRows(0, 2)...)
	if _, err := conn.Exec(ctx, "UPDATE "+table+" SET status = 'done', processed_at = now() WHERE id = (SELECT min(id) FROM "+table+")"); err != nil {
		t.Fatalf("mark the first row done: %v", err)
	}

	src := sameTable(t, postgres.Options{DSN: sharedPostgres.DSN(), Table: table, PollInterval: 50 * time.Millisecond})
	for range 2 {
		if err := src.Migrate(ctx); err != nil {
			t.Fatalf("migrate the previous table: %v", err)
		}
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = 'claimed_until' AND data_type = 'timestamp with time zone'", table); n != 1 {
		t.Fatalf("claimed_until columns after migrate: %d, want 1", n)
	}
	if _, err := conn.Exec(ctx, postgres.DDL("", table)); err != nil {
		t.Fatalf("apply DDL by hand after migrate: %v", err)
	}

	// The row done before the upgrade stays done, the pending one is claimed, and so are new ones.
	events := drain(t, src, 10, 1)
	if orderID(t, events[0]) != 1 {
		t.Fatalf("claimed order_id %d, want the pending row (1)", orderID(t, events[0]))
	}
	insertEvents(t, conn, "", table, orderRows(2, 1)...)
	if events := drain(t, src, 10, 1); orderID(t, events[0]) != 2 {
		t.Fatalf("claimed order_id %d after the upgrade, want 2", orderID(t, events[0]))
	}
	if counts := countByStatus(t, conn, table); counts["done"] != 3 || len(counts) != 1 {
		t.Fatalf("status counts %v, want 3 done", counts)
	}
}
