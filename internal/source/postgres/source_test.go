package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookpost/hookpost/internal/source"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

// sharedPostgres serves every test except the restart test, each on its own table.
var sharedPostgres *harness.Postgres

func TestMain(m *testing.M) {
	os.Exit(runWithPostgres(m))
}

func runWithPostgres(m *testing.M) int {
	if harness.OnlyFuzzing() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hookpost-source-postgres-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sharedPostgres, err = harness.StartPostgresProcess(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "start postgres: %v\n", err)
		return 1
	}
	defer sharedPostgres.Stop()
	return m.Run()
}

var tableCounter atomic.Int64

// newSource creates a Source on a fresh outbox table and migrates it.
func newSource(t *testing.T, opts postgres.Options) *postgres.Source {
	t.Helper()
	if opts.DSN == "" {
		opts.DSN = sharedPostgres.DSN()
	}
	if opts.Table == "" {
		opts.Table = fmt.Sprintf("outbox_%d", tableCounter.Add(1))
	}
	src, err := postgres.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("new source: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	if err := src.Migrate(testContext(t)); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return src
}

// sameTable returns a second Source on the first one's table.
func sameTable(t *testing.T, opts postgres.Options) *postgres.Source {
	t.Helper()
	src, err := postgres.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("new source: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testContext(t), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

type row struct {
	eventType, tenant, collection string
	payload                       string
}

// insertEvents inserts rows into the outbox in one transaction, as a producer would.
func insertEvents(t *testing.T, conn *pgx.Conn, schema, table string, rows ...row) {
	t.Helper()
	if err := insertRows(testContext(t), conn, schema, table, rows...); err != nil {
		t.Fatal(err)
	}
}

func insertRows(ctx context.Context, conn *pgx.Conn, schema, table string, rows ...row) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, r := range rows {
		if _, err := tx.Exec(ctx, postgres.InsertSQL(schema, table), r.eventType, r.tenant, r.collection, r.payload); err != nil {
			return fmt.Errorf("insert %v: %w", r, err)
		}
	}
	return tx.Commit(ctx)
}

func orderRows(from, n int) []row {
	rows := make([]row, n)
	for i := range rows {
		rows[i] = row{"order.created", "tenant-1", "orders", fmt.Sprintf(`{"order_id": %d}`, from+i)}
	}
	return rows
}

func orderID(t *testing.T, ev source.Event) int {
	t.Helper()
	var data struct {
		OrderID int `json:"order_id"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatalf("event %s data %s: %v", ev.ID, ev.Data, err)
	}
	return data.OrderID
}

// drain acks batches until want events arrived.
func drain(t *testing.T, src *postgres.Source, max, want int) []source.Event {
	t.Helper()
	ctx := testContext(t)
	var got []source.Event
	for len(got) < want {
		b, err := src.Next(ctx, max)
		if err != nil {
			t.Fatalf("next after %d of %d events: %v", len(got), want, err)
		}
		if n := len(b.Events()); n == 0 || n > max {
			t.Fatalf("batch of %d events, want 1..%d", n, max)
		}
		got = append(got, b.Events()...)
		if err := b.Ack(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	return got
}

func expectNothingPending(t *testing.T, src *postgres.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if b, err := src.Next(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want nothing pending, got batch %v err %v", b, err)
	}
}

func countByStatus(t *testing.T, conn *pgx.Conn, table string) map[string]int {
	t.Helper()
	rows, err := conn.Query(testContext(t), fmt.Sprintf("SELECT status, count(*) FROM %s GROUP BY status", pgx.Identifier{table}.Sanitize()))
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	counts := map[string]int{}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			t.Fatalf("scan: %v", err)
		}
		counts[status] = n
	}
	return counts
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestEventsCommittedWithBusinessDataArriveInIDOrder(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC)}
	src := newSource(t, postgres.Options{Now: clock.Now})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)

	orders := table + "_orders"
	if _, err := conn.Exec(ctx, "CREATE TABLE "+orders+" (id int PRIMARY KEY)"); err != nil {
		t.Fatalf("create orders: %v", err)
	}
	// An order and its events commit together; a rolled-back transaction leaves no event behind.
	rolledBack, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := rolledBack.Exec(ctx, postgres.InsertSQL("", table), "order.created", "t", "orders", `{"order_id": -1}`); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if err := rolledBack.Rollback(ctx); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	const n = 50
	before := time.Now()
	for i := range n {
		if _, err := tx.Exec(ctx, "INSERT INTO "+orders+" (id) VALUES ($1)", i); err != nil {
			t.Fatalf("insert order: %v", err)
		}
		if _, err := tx.Exec(ctx, postgres.InsertSQL("", table), "order.created", "tenant-1", "orders", fmt.Sprintf(`{"order_id": %d}`, i)); err != nil {
			t.Fatalf("insert event: %v", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}

	events := drain(t, src, 20, n)
	ids := map[string]bool{}
	for i, ev := range events {
		if got := orderID(t, ev); got != i {
			t.Fatalf("event %d has order_id %d: events out of id order", i, got)
		}
		if _, err := uuid.Parse(ev.ID); err != nil || ids[ev.ID] {
			t.Fatalf("event id %q: want a fresh uuid (parse error %v)", ev.ID, err)
		}
		ids[ev.ID] = true
		if ev.Type != "order.created" || ev.TenantID != "tenant-1" || ev.Collection != "orders" {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if ev.OccurredAt.Before(before.Add(-time.Minute)) || ev.OccurredAt.After(time.Now().Add(time.Minute)) {
			t.Fatalf("occurred_at default %v is not the insert time %v", ev.OccurredAt, before)
		}
	}
	expectNothingPending(t, src)

	if counts := countByStatus(t, conn, table); counts["done"] != n || len(counts) != 1 {
		t.Fatalf("status counts %v, want %d done", counts, n)
	}
	var processedAt time.Time
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT max(processed_at) FROM %s", table)).Scan(&processedAt); err != nil {
		t.Fatalf("processed_at: %v", err)
	}
	if !processedAt.Equal(clock.Now()) {
		t.Fatalf("processed_at %v, want the injected clock's %v", processedAt, clock.Now())
	}
}

func TestMalformedRowsAreSetAsideAndRowsBehindThemFlow(t *testing.T) {
	var rejections []source.Rejection
	var mu sync.Mutex
	src := newSource(t, postgres.Options{MaxPayloadBytes: 100, OnReject: func(r source.Rejection) {
		mu.Lock()
		defer mu.Unlock()
		rejections = append(rejections, r)
	}})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	conn := connect(t, sharedPostgres.DSN())
	insertEvents(t, conn, "", table,
		row{"", "t", "c", `{"order_id": 0}`},
		row{"order.created", "t", "c", `[1, 2]`},
		row{"order.created", "t", "c", `{"blob": "` + strings.Repeat("x", 200) + `"}`},
		row{"order.created", "t", "c", `{"order_id": 1}`},
		row{"order created", "t", "c", `{"order_id": 0}`},
		row{"order.created", strings.Repeat("7", 254), "c", `{"order_id": 0}`},
		row{"order.created", "t", "c", `{"order_id": 2}`},
	)

	events := drain(t, src, 10, 2)
	if orderID(t, events[0]) != 1 || orderID(t, events[1]) != 2 {
		t.Fatalf("want order ids 1 and 2, got %s and %s", events[0].Data, events[1].Data)
	}
	expectNothingPending(t, src)

	mu.Lock()
	defer mu.Unlock()
	if len(rejections) != 5 {
		t.Fatalf("want 5 rejections reported once each, got %+v", rejections)
	}
	rows, err := conn.Query(testContext(t), fmt.Sprintf("SELECT event_id::text, error FROM %s WHERE status = 'rejected' ORDER BY id", table))
	if err != nil {
		t.Fatalf("query rejected: %v", err)
	}
	wantErrors := []string{"event_type: event type is empty", "payload: payload is JSON but not an object", "payload: payload is", "event_type: event type", "tenant_id/collection: tenant id is 254 bytes long"}
	i := 0
	for rows.Next() {
		var id, reason string
		if err := rows.Scan(&id, &reason); err != nil {
			t.Fatalf("scan: %v", err)
		}
		if !strings.HasPrefix(reason, wantErrors[i]) {
			t.Errorf("rejected row %d error %q, want prefix %q", i, reason, wantErrors[i])
		}
		if rejections[i].ID != id || rejections[i].Reason != reason || rejections[i].Source != "postgres" {
			t.Errorf("rejection %d = %+v, want id %s reason %q", i, rejections[i], id, reason)
		}
		i++
	}
	if i != 5 {
		t.Fatalf("want 5 rejected rows, got %d", i)
	}
}

func TestTwoSourcesOnOneTableSeeEveryEventExactlyOnce(t *testing.T) {
	first := newSource(t, postgres.Options{PollInterval: 50 * time.Millisecond})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	second := sameTable(t, postgres.Options{DSN: sharedPostgres.DSN(), Table: table, PollInterval: 50 * time.Millisecond})
	conn := connect(t, sharedPostgres.DSN())

	const transactions, perTransaction = 20, 25
	const total = transactions * perTransaction
	ctx := testContext(t)
	inserted := make(chan error, 1)
	go func() {
		for i := range transactions {
			if err := insertRows(ctx, conn, "", table, orderRows(i*perTransaction, perTransaction)...); err != nil {
				inserted <- err
				return
			}
		}
		inserted <- nil
	}()

	var (
		mu       sync.Mutex
		seen     = map[int]int{}
		received atomic.Int64
		wg       sync.WaitGroup
		perSrc   [2]int
	)
	for i, src := range []*postgres.Source{first, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for received.Load() < total && ctx.Err() == nil {
				waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				b, err := src.Next(waitCtx, 7)
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				for _, ev := range b.Events() {
					var data struct {
						OrderID int `json:"order_id"`
					}
					if err := json.Unmarshal(ev.Data, &data); err != nil {
						t.Errorf("event %s data %s: %v", ev.ID, ev.Data, err)
					}
					seen[data.OrderID]++
				}
				perSrc[i] += len(b.Events())
				mu.Unlock()
				if err := b.Ack(ctx); err != nil {
					t.Errorf("ack: %v", err)
					return
				}
				received.Add(int64(len(b.Events())))
			}
		}()
	}
	wg.Wait()
	if err := <-inserted; err != nil {
		t.Fatalf("insert: %v", err)
	}
	if len(seen) != total {
		t.Fatalf("saw %d distinct events, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("event %d seen %d times", id, n)
		}
	}
	t.Logf("events per source: %v", perSrc)
}

func TestNackedBatchIsRedeliveredAfterTheDelay(t *testing.T) {
	src := newSource(t, postgres.Options{})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	conn := connect(t, sharedPostgres.DSN())
	insertEvents(t, conn, "", table, orderRows(0, 3)...)
	ctx := testContext(t)

	b, err := src.Next(ctx, 10)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	first := b.Events()
	const delay = 300 * time.Millisecond
	nackedAt := time.Now()
	if err := b.Nack(ctx, delay, errors.New("api server unavailable")); err != nil {
		t.Fatalf("nack: %v", err)
	}
	if err := b.Ack(ctx); err == nil {
		t.Fatalf("ack after nack succeeded, want an already-settled error")
	}
	again, err := src.Next(ctx, 10)
	if err != nil {
		t.Fatalf("next after nack: %v", err)
	}
	if waited := time.Since(nackedAt); waited < delay {
		t.Fatalf("redelivered after %s, before the %s delay", waited, delay)
	}
	if len(again.Events()) != len(first) {
		t.Fatalf("redelivered %d events, want %d", len(again.Events()), len(first))
	}
	for i := range first {
		if again.Events()[i].ID != first[i].ID {
			t.Fatalf("redelivered event %d is %s, want %s", i, again.Events()[i].ID, first[i].ID)
		}
	}
	if err := again.Ack(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	expectNothingPending(t, src)
}

func TestNotifyWakesAWaitingNextWithoutPolling(t *testing.T) {
	src := newSource(t, postgres.Options{PollInterval: time.Hour})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	waitReady(t, src)

	type result struct {
		b   source.Batch
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := src.Next(ctx, 10)
		done <- result{b, err}
	}()
	time.Sleep(300 * time.Millisecond) // let Next find the table empty and wait
	insertedAt := time.Now()
	insertEvents(t, conn, "", table, orderRows(0, 1)...)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("next: %v", r.err)
		}
		t.Logf("woken %s after the insert", time.Since(insertedAt))
		if err := r.b.Ack(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("next still waiting 5s after the insert: the notification did not wake it")
	}
}

func waitReady(t *testing.T, src *postgres.Source) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := src.Ready(testContext(t))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("source not ready after 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSourceRecoversWhenPostgresRestarts(t *testing.T) {
	pg := harness.StartPostgres(t)
	src := newSource(t, postgres.Options{DSN: pg.DSN(), PollInterval: 100 * time.Millisecond, ReconnectBackoffMax: 200 * time.Millisecond, ClaimLease: 500 * time.Millisecond})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	ctx := testContext(t)
	conn := connect(t, pg.DSN())
	insertEvents(t, conn, "", table, orderRows(0, 3)...)
	waitReady(t, src)

	// A batch open across the restart cannot be acked while the database is down; its rows come back once its
	// lease runs out.
	open, err := src.Next(ctx, 2)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	pg.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for src.Ready(ctx) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("ready still reports healthy 10s after postgres stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("ready while down: %v", src.Ready(ctx))
	if err := open.Ack(ctx); err == nil {
		t.Fatalf("ack of a batch whose connection died succeeded")
	}

	next := make(chan []source.Event, 1)
	go func() {
		var got []source.Event
		for len(got) < 6 && ctx.Err() == nil {
			b, err := src.Next(ctx, 10)
			if err != nil {
				break
			}
			got = append(got, b.Events()...)
			if err := b.Ack(ctx); err != nil {
				t.Errorf("ack: %v", err)
			}
		}
		next <- got
	}()
	time.Sleep(500 * time.Millisecond) // Next keeps failing to claim meanwhile
	if err := pg.Start(); err != nil {
		t.Fatalf("start postgres again: %v", err)
	}
	insertEvents(t, connect(t, pg.DSN()), "", table, orderRows(3, 3)...)
	got := <-next
	if len(got) != 6 {
		t.Fatalf("got %d events after the restart, want 6", len(got))
	}
	// The lost batch's rows may come back after rows behind them, depending on when its lease ran out.
	seen := map[int]bool{}
	for _, ev := range got {
		seen[orderID(t, ev)] = true
	}
	for i := range 6 {
		if !seen[i] {
			t.Fatalf("order_id %d missing after the restart; got %v", i, seen)
		}
	}
	waitReady(t, src)
}

func TestRetentionDeletesOldDoneRowsOnly(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 11, 16, 10, 0, 0, 0, time.UTC)}
	src := newSource(t, postgres.Options{Now: clock.Now, Retention: 24 * time.Hour})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	conn := connect(t, sharedPostgres.DSN())
	insertEvents(t, conn, "", table, orderRows(0, 2)...)
	insertEvents(t, conn, "", table, row{"", "t", "c", `{}`}) // rejected: kept for a human
	drain(t, src, 10, 2)

	clock.Advance(23 * time.Hour)
	insertEvents(t, conn, "", table, orderRows(2, 1)...)
	drain(t, src, 10, 1) // acked at 23h: younger than the retention when the purge below runs

	clock.Advance(2 * time.Hour) // the first two are 25h old now, the third 2h
	insertEvents(t, conn, "", table, orderRows(3, 1)...)
	drain(t, src, 10, 1) // Next purges first: more than a minute passed on the clock

	counts := countByStatus(t, conn, table)
	if counts["done"] != 2 || counts["rejected"] != 1 {
		t.Fatalf("status counts %v, want 2 done (the young ones) and 1 rejected", counts)
	}
}

func TestMigrateIsIdempotentAndQuotesOddNames(t *testing.T) {
	schema, table := "Hookpost Events", `out"box`
	src := newSource(t, postgres.Options{Schema: schema, Table: table, PollInterval: time.Hour})
	ctx := testContext(t)
	if err := src.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	// Two replicas migrating at once wait for each other instead of failing.
	other := sameTable(t, postgres.Options{DSN: sharedPostgres.DSN(), Schema: schema, Table: table})
	var wg sync.WaitGroup
	for _, s := range []*postgres.Source{src, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Migrate(ctx); err != nil {
				t.Errorf("concurrent migrate: %v", err)
			}
		}()
	}
	wg.Wait()

	conn := connect(t, sharedPostgres.DSN())
	if _, err := conn.Exec(ctx, postgres.DDL(schema, table)); err != nil {
		t.Fatalf("apply DDL by hand after migrate: %v", err)
	}
	waitReady(t, src)
	insertEvents(t, conn, schema, table, orderRows(0, 1)...)
	done := make(chan error, 1)
	go func() {
		b, err := src.Next(ctx, 1)
		if err == nil {
			err = b.Ack(ctx)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("next on the odd table: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no notification on channel %q", postgres.ChannelName(schema, table))
	}
}

func TestChannelNameFitsPostgresLimit(t *testing.T) {
	if got := postgres.ChannelName("", ""); got != "outbox_public_integration_outbox" {
		t.Fatalf("default channel %q", got)
	}
	long := postgres.ChannelName("public", strings.Repeat("t", 100))
	if len(long) > 63 {
		t.Fatalf("channel %q is %d bytes, over 63", long, len(long))
	}
	if long == postgres.ChannelName("public", strings.Repeat("t", 101)) {
		t.Fatalf("long names collide")
	}
}

func TestNextAfterCloseFails(t *testing.T) {
	src := newSource(t, postgres.Options{})
	if err := src.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := src.Next(testContext(t), 1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("next after close: %v, want a closed error", err)
	}
	if err := src.Ready(testContext(t)); err == nil {
		t.Fatalf("ready after close reported healthy")
	}
}

func TestMigrateDoesNotWaitForOpenInserts(t *testing.T) {
	src := newSource(t, postgres.Options{})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	// An application transaction that inserted an event and has not committed holds a lock that index and
	// trigger creation would wait for.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, postgres.InsertSQL("", table), "order.created", "t", "c", `{}`); err != nil {
		t.Fatalf("insert: %v", err)
	}
	migrateCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := src.Migrate(migrateCtx); err != nil {
		t.Fatalf("migrate with an insert in flight: %v", err)
	}
}

// TestRowWithInfiniteOccurredAtIsSetAside: occurred_at = 'infinity' is a valid timestamptz that no Go time can
// hold; such a row is set aside with an error naming the column, and the rows behind it flow, instead of failing
// every claim.
func TestRowWithInfiniteOccurredAtIsSetAside(t *testing.T) {
	var rejections []source.Rejection
	var mu sync.Mutex
	src := newSource(t, postgres.Options{OnReject: func(r source.Rejection) {
		mu.Lock()
		defer mu.Unlock()
		rejections = append(rejections, r)
	}})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	insertEvents(t, conn, "", table, row{"order.created", "t", "c", `{"order_id": 1}`})
	for _, when := range []string{"infinity", "-infinity"} {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (event_type, payload, occurred_at) VALUES ('order.created', '{"order_id": 0}', $1::timestamptz)`, table), when); err != nil {
			t.Fatal(err)
		}
	}
	insertEvents(t, conn, "", table, row{"order.created", "t", "c", `{"order_id": 2}`})

	events := drain(t, src, 10, 2)
	if orderID(t, events[0]) != 1 || orderID(t, events[1]) != 2 {
		t.Fatalf("want order ids 1 and 2, got %s and %s", events[0].Data, events[1].Data)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejections) != 2 {
		t.Fatalf("want the two infinite rows set aside, got %+v", rejections)
	}
	for _, r := range rejections {
		if !strings.HasPrefix(r.Reason, "occurred_at: infinity is not a point in time") {
			t.Errorf("rejection reason %q does not name occurred_at", r.Reason)
		}
	}
	var rejected int
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE status = 'rejected' AND error LIKE 'occurred_at:%%'", table)).Scan(&rejected); err != nil {
		t.Fatal(err)
	}
	if rejected != 2 {
		t.Errorf("%d rows rejected with an occurred_at error, want 2", rejected)
	}
}

// TestHostileAttributesAndDeepPayloadsAreSetAside inserts what a careless or hostile producer can: a tenant or
// collection carrying a terminal escape sequence, and a payload nested deeper than source.MaxDataDepth. Each
// row is set aside with an error naming the column and the fix, and the row behind them is delivered.
func TestHostileAttributesAndDeepPayloadsAreSetAside(t *testing.T) {
	src := newSource(t, postgres.Options{})
	table := fmt.Sprintf("outbox_%d", tableCounter.Load())
	conn := connect(t, sharedPostgres.DSN())
	deep := `{"a": ` + strings.Repeat("[", source.MaxDataDepth) + strings.Repeat("]", source.MaxDataDepth) + "}"
	insertEvents(t, conn, "", table,
		row{"order.created", "\x1b]0;pwned\x07", "c", `{"order_id": 0}`},
		row{"order.created", "t", "posts\u009b31m", `{"order_id": 0}`},
		row{"order.created", "t", "c", deep},
		row{"order.created", "t", "c", `{"order_id": 3}`},
	)

	events := drain(t, src, 10, 1)
	if orderID(t, events[0]) != 3 {
		t.Fatalf("want order id 3, got %s", events[0].Data)
	}
	expectNothingPending(t, src)
	rows, err := conn.Query(testContext(t), fmt.Sprintf("SELECT error FROM %s WHERE status = 'rejected' ORDER BY id", table))
	if err != nil {
		t.Fatalf("query rejected: %v", err)
	}
	errs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read rejected: %v", err)
	}
	want := []string{
		`tenant_id/collection: tenant id "\x1b]0;pwned\a" has a control character (U+001B) at byte 0`,
		`tenant_id/collection: collection "posts\u009b31m" has a control character (U+009B) at byte 5`,
		"payload: payload nests objects and arrays 101 levels deep, over the limit of 100",
	}
	if len(errs) != len(want) {
		t.Fatalf("rejected rows say %q, want %d", errs, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(errs[i], want[i]) {
			t.Errorf("rejected row %d says %q, want it to start %q", i, errs[i], want[i])
		}
	}
}

// The watermark is the lowest id still pending, so an unacknowledged batch holds it back (whatever replica holds
// the batch), and events carry their ids as positions. Once everything is done it is one past the highest id.
func TestWatermarkStaysBelowTheFirstUnacknowledgedEvent(t *testing.T) {
	src := newSource(t, postgres.Options{})
	other := sameTable(t, postgres.Options{DSN: sharedPostgres.DSN(), Table: fmt.Sprintf("outbox_%d", tableCounter.Load())})
	ctx := testContext(t)
	if w, err := src.Watermark(ctx); err != nil || w != 0 {
		t.Fatalf("watermark of an empty table = %d, %v; want 0", w, err)
	}
	conn := connect(t, sharedPostgres.DSN())
	insertEvents(t, conn, "", fmt.Sprintf("outbox_%d", tableCounter.Load()), orderRows(0, 6)...)

	first, err := src.Next(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	second, err := other.Next(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var positions []uint64
	for _, ev := range append(append([]source.Event(nil), first.Events()...), second.Events()...) {
		positions = append(positions, ev.Position)
	}
	for i := 1; i < len(positions); i++ {
		if positions[i] != positions[i-1]+1 {
			t.Fatalf("positions %v, want the ids in order", positions)
		}
	}
	base := positions[0]
	if err := second.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if w, err := src.Watermark(ctx); err != nil || w != base {
		t.Fatalf("watermark with the first batch unacknowledged = %d, %v; want its first id %d", w, err, base)
	}
	if err := first.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if w, err := other.Watermark(ctx); err != nil || w != base+6 {
		t.Fatalf("watermark with every event done = %d, %v; want one past the last id, %d", w, err, base+6)
	}
}

// Watermarks keeps a reading for its TTL: the ordered deliveries' many questions cost one query per TTL, and a
// position below a reading needs none.
func TestWatermarksKeepAReadingForItsTTL(t *testing.T) {
	src := newSource(t, postgres.Options{})
	ctx := testContext(t)
	conn := connect(t, sharedPostgres.DSN())
	insertEvents(t, conn, "", fmt.Sprintf("outbox_%d", tableCounter.Load()), orderRows(0, 2)...)
	b, err := src.Next(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	pos := b.Events()[0].Position
	w := source.NewWatermarks(time.Second)
	if _, _, err := w.Passed(ctx, "nats", pos, time.Now()); err == nil || !strings.Contains(err.Error(), `source "nats" is not configured`) {
		t.Fatalf("a source not added: error %v, want one naming it", err)
	}
	w.Add(src)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if passed, readAt, err := w.Passed(ctx, postgres.Name, pos, t0); err != nil || passed || !readAt.Equal(t0) {
		t.Fatalf("before the ack: Passed = %v, read at %s, %v; want false, read at %s", passed, readAt, err, t0)
	}
	if err := b.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if passed, readAt, _ := w.Passed(ctx, postgres.Name, pos, t0.Add(500*time.Millisecond)); passed || !readAt.Equal(t0) {
		t.Fatal("within the TTL the reading before the ack still answers: want false, from the reading at t0")
	}
	if passed, readAt, err := w.Passed(ctx, postgres.Name, pos, t0.Add(time.Second)); err != nil || !passed || !readAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("after the TTL: Passed = %v, read at %s, %v; want true from a new reading", passed, readAt, err)
	}
	if passed, _, _ := w.Passed(ctx, postgres.Name, pos+1, t0.Add(1500*time.Millisecond)); passed {
		t.Fatal("the second event is still pending: want false")
	}
}
