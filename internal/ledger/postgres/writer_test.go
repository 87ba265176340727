package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

// sharedPostgres serves every test except the one that stops the server, each on its own table.
var sharedPostgres *harness.Postgres

func TestMain(m *testing.M) {
	os.Exit(runWithPostgres(m))
}

func runWithPostgres(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hookpost-ledger-postgres-")
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

func nextTable() string { return fmt.Sprintf("ledger_%d", tableCounter.Add(1)) }

// newWriter creates a Writer, on a fresh table unless opts names one, with its own metrics registry, and
// migrates it.
func newWriter(t testing.TB, opts postgres.Options) (*postgres.Writer, *prometheus.Registry) {
	t.Helper()
	if opts.DSN == "" {
		opts.DSN = sharedPostgres.DSN()
	}
	if opts.Table == "" {
		opts.Table = nextTable()
	}
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	if opts.Log.GetSink() == nil {
		opts.Log = funcr.New(func(prefix, args string) { t.Log(prefix, args) }, funcr.Options{})
	}
	w, err := postgres.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("new writer: %v", err)
	}
	t.Cleanup(w.Close)
	if err := w.Migrate(testContext(t)); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return w, reg
}

func testContext(t testing.TB) context.Context {
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

func count(t *testing.T, conn *pgx.Conn, qualified, where string) int {
	t.Helper()
	if where != "" {
		where = " WHERE " + where
	}
	var n int
	if err := conn.QueryRow(testContext(t), "SELECT count(*) FROM "+qualified+where).Scan(&n); err != nil {
		t.Fatalf("count %s%s: %v", qualified, where, err)
	}
	return n
}

// metric returns the value of the counter or gauge name (with the given label value, if any) in reg.
func metric(t *testing.T, reg *prometheus.Registry, name, labelValue string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelValue != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != labelValue) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not registered", name, labelValue)
	return 0
}

// eventually retries f until it returns nil or 30s pass.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// base is when the test attempts start. It may be older than the default retention: tests that run Start keep
// their rows with a negative Retention, or Start's first purge could delete them.
var base = time.Date(2025, 11, 16, 10, 0, 0, 0, time.UTC)

// attempt i of a retrying delivery, with every field set.
func attempt(i int) ledger.Attempt {
	return ledger.Attempt{
		DeliveryName: fmt.Sprintf("orders-%04d", i/3),
		Namespace:    "shop",
		Subscription: "orders",
		EventID:      fmt.Sprintf("evt-%04d", i/3),
		EventType:    "order.created",
		TenantID:     "tenant-1",
		Collection:   "orders",
		Number:       i%3 + 1,
		Time:         base.Add(time.Duration(i) * time.Second),
		Duration:     time.Duration(i+1) * 1500 * time.Microsecond,
		StatusCode:   503,
		ErrorClass:   "Retry",
		Error:        "HTTP 503 Service Unavailable",
		Response:     []byte(`{"error":"busy"}`),
		NextRetry:    base.Add(time.Duration(i)*time.Second + time.Minute),
		Outcome:      ledger.OutcomeRetrying,
		Test:         i%5 == 0,
		Replay:       i%7 == 0,
	}
}

// startWriter runs w.Start until the test ends or the returned stop is called; stop returns Start's error.
func startWriter(t *testing.T, w *postgres.Writer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Start(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestDDLIsIdempotentAndQuotesOddNames(t *testing.T) {
	schema, table := "Ledger Data", fmt.Sprintf(`deli"veries %d`, tableCounter.Add(1))
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	for i := range 2 {
		if _, err := conn.Exec(ctx, postgres.DDL(schema, table)); err != nil {
			t.Fatalf("apply DDL, time %d: %v", i+1, err)
		}
	}
	w, _ := newWriter(t, postgres.Options{Schema: schema, Table: table}) // Migrate after the DDL by hand
	var indexes int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`, schema, table).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != 4 {
		t.Errorf("%d indexes, want the primary key and three", indexes)
	}
	w.Record(attempt(0))
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("flush to the odd table: %v", err)
	}
	got, err := w.Query(ctx, postgres.Filter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("query the odd table: %v, %d rows", err, len(got))
	}

	if ddl := postgres.DDL("", ""); !strings.Contains(ddl, `"public"."webhook_deliveries"`) || strings.Contains(ddl, "CREATE SCHEMA") {
		t.Errorf("default DDL:\n%s", ddl)
	}
}

func TestConcurrentMigrateWaitsInsteadOfFailing(t *testing.T) {
	table := nextTable()
	var writers []*postgres.Writer
	for range 2 {
		w, err := postgres.New(context.Background(), postgres.Options{DSN: sharedPostgres.DSN(), Schema: "concurrent", Table: table})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		writers = append(writers, w)
	}
	ctx := testContext(t)
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() {
			if err := w.Migrate(ctx); err != nil {
				t.Errorf("concurrent migrate: %v", err)
			}
		})
	}
	wg.Wait()
	conn := connect(t, sharedPostgres.DSN())
	if n := count(t, conn, pgx.Identifier{"concurrent", table}.Sanitize(), ""); n != 0 {
		t.Errorf("%d rows in a fresh table", n)
	}
}

func TestEveryFieldRoundTrips(t *testing.T) {
	table := nextTable()
	w, reg := newWriter(t, postgres.Options{Table: table, BatchSize: 100})
	ctx := testContext(t)
	const n = 250 // three batches
	want := make([]ledger.Attempt, n)
	for i := range n {
		a := attempt(i)
		switch i % 10 {
		case 1: // success: no error, no retry
			a.StatusCode, a.ErrorClass, a.Error, a.NextRetry, a.Outcome = 204, "Succeeded", "", time.Time{}, ledger.OutcomeSucceeded
			a.Response = nil
		case 2: // no response at all, and a final failure
			a.StatusCode, a.ErrorClass, a.Response, a.NextRetry, a.Outcome = 0, "Retry", nil, time.Time{}, ledger.OutcomeFailed
			a.Error = "timeout after 10s\ndial tcp 10.0.0.1:443:\r\n\ti/o timeout"
		case 3: // a binary body that is not UTF-8
			a.Response = []byte{0xff, 0xfe, 0x00, 'o', 'k', 0xc3}
		case 4: // unknown class, no tenant or collection, a fast-path attempt with its derived name
			a.ErrorClass, a.TenantID, a.Collection = "", "", ""
		}
		want[i] = a
		w.Record(a)
	}
	if got := metric(t, reg, "hookpost_ledger_buffered", ""); got != n {
		t.Errorf("buffered %v before the flush, want %d", got, n)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if got := metric(t, reg, "hookpost_ledger_rows_written_total", ""); got != n {
		t.Errorf("rows written %v, want %d", got, n)
	}
	if got := metric(t, reg, "hookpost_ledger_buffered", ""); got != 0 {
		t.Errorf("buffered %v after the flush", got)
	}

	got, err := w.Query(ctx, postgres.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d rows, want %d", len(got), n)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}

	// Absent values are NULL in the table, not zero values a SQL user would have to know about.
	conn := connect(t, sharedPostgres.DSN())
	q := pgx.Identifier{"public", table}.Sanitize()
	for where, wantN := range map[string]int{
		"next_retry_at IS NULL":              2 * n / 10,
		"status_code IS NULL":                n / 10,
		"error IS NULL":                      n / 10,
		"error_class IS NULL":                n / 10,
		"response IS NULL":                   2 * n / 10,
		"tenant_id IS NULL":                  n / 10,
		"recorded_at IS NULL":                0,
		`error LIKE E'%\n%'`:                 n / 10,
		`response = '\xfffe006f6bc3'::bytea`: n / 10,
	} {
		if got := count(t, conn, q, where); got != wantN {
			t.Errorf("%d rows where %s, want %d", got, where, wantN)
		}
	}
}

func TestRecordKeepsWhatAnyDatabaseTakes(t *testing.T) {
	w, _ := newWriter(t, postgres.Options{})
	ctx := testContext(t)
	a := attempt(0)
	a.TenantID = "caf\xe9"          // Latin-1, not UTF-8
	a.Collection = "nul\x00byte"    // text columns cannot hold NUL
	a.Response = make([]byte, 5000) // only the first KiB is kept
	for i := range a.Response {
		a.Response[i] = byte(i)
	}
	body := a.Response
	w.Record(a)
	body[0] = 'X' // the caller reuses its buffer
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := w.Query(ctx, postgres.Filter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("query: %v, %d rows", err, len(got))
	}
	if got[0].TenantID != "caf\uFFFD" || got[0].Collection != "nul\uFFFDbyte" {
		t.Errorf("tenant %q, collection %q", got[0].TenantID, got[0].Collection)
	}
	if len(got[0].Response) != postgres.MaxResponseBytes || got[0].Response[0] != 0 || got[0].Response[1023] != byte(1023%256) {
		t.Errorf("response of %d bytes starting %v", len(got[0].Response), got[0].Response[:2])
	}
}

func TestAttemptsRecordedWhilePostgresIsDownAreWrittenWhenItIsBack(t *testing.T) {
	pg := harness.StartPostgres(t)
	table := nextTable()
	w, reg := newWriter(t, postgres.Options{DSN: pg.DSN(), Table: table, FlushInterval: 20 * time.Millisecond, Retention: -1})
	q := pgx.Identifier{"public", table}.Sanitize()
	stop := startWriter(t, w)
	for i := range 5 {
		w.Record(attempt(i))
	}
	conn := connect(t, pg.DSN())
	eventually(t, func() error {
		if n := count(t, conn, q, ""); n != 5 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})

	pg.Stop()
	for i := 5; i < 25; i++ {
		w.Record(attempt(i))
	}
	eventually(t, func() error {
		if metric(t, reg, "hookpost_ledger_write_errors_total", "") == 0 {
			return errors.New("no failed write yet")
		}
		return nil
	})
	if got := metric(t, reg, "hookpost_ledger_buffered", ""); got != 20 {
		t.Errorf("buffered %v while postgres is down, want 20", got)
	}
	// While Start's writes fail, Flush (called before every acknowledgement and status write) says so at once
	// instead of waiting on the database itself.
	if err := w.Flush(testContext(t)); err == nil || !strings.Contains(err.Error(), "ledger writes are failing") {
		t.Errorf("Flush while postgres is down = %v, want the failing writes' error", err)
	}
	if err := pg.Start(); err != nil {
		t.Fatalf("start postgres again: %v", err)
	}
	conn = connect(t, pg.DSN())
	eventually(t, func() error {
		if n := count(t, conn, q, ""); n != 25 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Errorf("start returned %v", err)
	}
	// Nothing was written twice, and the order of attempts is kept.
	got, err := w.Query(testContext(t), postgres.Filter{Limit: 100})
	if err != nil || len(got) != 25 {
		t.Fatalf("query: %v, %d rows", err, len(got))
	}
	for i, a := range got {
		if !a.Time.Equal(attempt(i).Time) {
			t.Fatalf("row %d is attempt at %s", i, a.Time)
		}
	}
}

func TestStartWritesWhatIsBufferedWhenItsContextEnds(t *testing.T) {
	table := nextTable()
	w, _ := newWriter(t, postgres.Options{Table: table, FlushInterval: time.Hour, Retention: -1})
	q := pgx.Identifier{"public", table}.Sanitize()
	stop := startWriter(t, w)
	for i := range 10 {
		w.Record(attempt(i))
	}
	if err := stop(); err != nil {
		t.Fatalf("start returned %v", err)
	}
	if n := count(t, connect(t, sharedPostgres.DSN()), q, ""); n != 10 {
		t.Fatalf("%d rows after shutdown, want 10", n)
	}
}

func TestFullBufferDropsCountsAndLogs(t *testing.T) {
	var (
		mu   sync.Mutex
		logs []string
	)
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, args)
	}, funcr.Options{})
	w, reg := newWriter(t, postgres.Options{BufferSize: 5, FlushInterval: time.Hour, Retention: -1, Log: log})
	for i := range 8 {
		w.Record(attempt(i))
	}
	bad := attempt(8)
	bad.Outcome = "pending"
	w.Record(bad)
	if got := metric(t, reg, "hookpost_ledger_dropped_total", "buffer_full"); got != 3 {
		t.Errorf("dropped (buffer full) %v, want 3", got)
	}
	if got := metric(t, reg, "hookpost_ledger_dropped_total", "invalid"); got != 1 {
		t.Errorf("dropped (invalid) %v, want 1", got)
	}
	if got := metric(t, reg, "hookpost_ledger_buffered", ""); got != 5 {
		t.Errorf("buffered %v, want the buffer size 5", got)
	}
	if err := w.Flush(testContext(t)); err != nil {
		t.Fatal(err)
	}
	got, err := w.Query(testContext(t), postgres.Filter{})
	if err != nil || len(got) != 5 || !got[4].Time.Equal(attempt(4).Time) {
		t.Fatalf("query: %v, %d rows; want the first 5 attempts", err, len(got))
	}
	w.Record(attempt(9)) // room again
	if got := metric(t, reg, "hookpost_ledger_buffered", ""); got != 1 {
		t.Errorf("buffered %v after the flush and one record, want 1", got)
	}

	// The loop logs the drops once, with their count.
	stop := startWriter(t, w)
	eventually(t, func() error {
		mu.Lock()
		defer mu.Unlock()
		all := strings.Join(logs, "\n")
		if !strings.Contains(all, `"msg"="Ledger buffer full; attempts dropped" "dropped"=3`) ||
			!strings.Contains(all, `"msg"="Attempts the ledger cannot store dropped" "dropped"=1`) ||
			!strings.Contains(all, `outcome \"pending\"`) {
			return fmt.Errorf("logs so far:\n%s", all)
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(strings.Join(logs, "\n"), "Ledger buffer full"); n != 1 {
		t.Errorf("buffer full logged %d times, want once", n)
	}
}

func TestValueTheDatabaseRefusesIsDroppedAloneNotRetriedForever(t *testing.T) {
	// A LATIN1 database cannot store an emoji: the database refuses the row, not the connection.
	conn := connect(t, sharedPostgres.DSN())
	database := fmt.Sprintf("ledger_latin1_%d", tableCounter.Add(1))
	if _, err := conn.Exec(testContext(t), "CREATE DATABASE "+database+" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		t.Fatal(err)
	}
	w, reg := newWriter(t, postgres.Options{DSN: sharedPostgres.DSNFor(database)})
	for i := range 4 {
		a := attempt(i)
		a.Collection = "café" // LATIN1 has it
		if i == 2 {
			a.TenantID = "party-\U0001F389"
		}
		w.Record(a)
	}
	if err := w.Flush(testContext(t)); err != nil {
		t.Fatalf("flush: %v", err)
	}
	got, err := w.Query(testContext(t), postgres.Filter{})
	if err != nil || len(got) != 3 {
		t.Fatalf("query: %v, %d rows, want 3", err, len(got))
	}
	if got[0].Collection != "café" {
		t.Errorf("collection %q read back from LATIN1, want café", got[0].Collection)
	}
	if metric(t, reg, "hookpost_ledger_dropped_total", "invalid") != 1 || metric(t, reg, "hookpost_ledger_rows_written_total", "") != 3 ||
		metric(t, reg, "hookpost_ledger_buffered", "") != 0 {
		t.Errorf("dropped %v, written %v, buffered %v; want 1, 3, 0", metric(t, reg, "hookpost_ledger_dropped_total", "invalid"),
			metric(t, reg, "hookpost_ledger_rows_written_total", ""), metric(t, reg, "hookpost_ledger_buffered", ""))
	}
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

func TestRetentionDeletesOnlyOldAttempts(t *testing.T) {
	clock := &fakeClock{now: base}
	table := nextTable()
	w, _ := newWriter(t, postgres.Options{Table: table, Retention: 24 * time.Hour, Now: clock.Now})
	ctx := testContext(t)
	at := func(ago time.Duration) ledger.Attempt {
		a := attempt(0)
		a.Time = base.Add(-ago)
		return a
	}
	for _, ago := range []time.Duration{72 * time.Hour, 25 * time.Hour, 23 * time.Hour, time.Minute} {
		w.Record(at(ago))
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	keepForever, _ := newWriter(t, postgres.Options{Table: table, Retention: -1, Now: clock.Now})
	if n, err := keepForever.PurgeExpired(ctx); err != nil || n != 0 {
		t.Errorf("purge with negative retention deleted %d (%v)", n, err)
	}
	if n, err := w.PurgeExpired(ctx); err != nil || n != 2 {
		t.Fatalf("purge deleted %d (%v), want 2", n, err)
	}
	got, err := w.Query(ctx, postgres.Filter{})
	if err != nil || len(got) != 2 || !got[0].Time.Equal(base.Add(-23*time.Hour)) || !got[1].Time.Equal(base.Add(-time.Minute)) {
		t.Fatalf("left %+v (%v), want the attempts of 23h and 1m ago", got, err)
	}

	// Start purges too.
	w.Record(at(48 * time.Hour))
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	startWriter(t, w)
	conn := connect(t, sharedPostgres.DSN())
	eventually(t, func() error {
		if n := count(t, conn, pgx.Identifier{"public", table}.Sanitize(), ""); n != 2 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
}

func TestQueryFilters(t *testing.T) {
	w, _ := newWriter(t, postgres.Options{})
	ctx := testContext(t)
	rec := func(minute int, ns, sub, event string, number int, outcome ledger.Outcome) ledger.Attempt {
		a := ledger.Attempt{
			DeliveryName: sub + "-" + event, Namespace: ns, Subscription: sub, EventID: event, EventType: "order.created",
			Number: number, Time: base.Add(time.Duration(minute) * time.Minute), Duration: time.Millisecond, Outcome: outcome,
		}
		w.Record(a)
		return a
	}
	all := []ledger.Attempt{
		rec(0, "a", "s1", "e1", 1, ledger.OutcomeRetrying),
		rec(1, "a", "s2", "e1", 1, ledger.OutcomeSucceeded),
		rec(2, "b", "s1", "e3", 1, ledger.OutcomeRetrying),
		rec(3, "a", "s1", "e2", 1, ledger.OutcomeFailed),
		rec(3, "a", "s1", "e1", 2, ledger.OutcomeSucceeded), // same time: written later, listed later
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pick := func(idx ...int) []ledger.Attempt {
		var out []ledger.Attempt
		for _, i := range idx {
			out = append(out, all[i])
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    postgres.Filter
		want []ledger.Attempt
	}{
		{"all", postgres.Filter{}, all},
		{"namespace", postgres.Filter{Namespace: "a"}, pick(0, 1, 3, 4)},
		{"subscription", postgres.Filter{Namespace: "a", Subscription: "s1"}, pick(0, 3, 4)},
		{"subscription in any namespace", postgres.Filter{Subscription: "s1"}, pick(0, 2, 3, 4)},
		{"event across subscriptions", postgres.Filter{EventID: "e1"}, pick(0, 1, 4)},
		{"succeeded", postgres.Filter{Outcome: ledger.OutcomeSucceeded}, pick(1, 4)},
		{"retrying", postgres.Filter{Outcome: ledger.OutcomeRetrying}, pick(0, 2)},
		{"failed", postgres.Filter{Outcome: ledger.OutcomeFailed}, pick(3)},
		{"since is inclusive", postgres.Filter{Since: base.Add(2 * time.Minute)}, pick(2, 3, 4)},
		{"limit keeps the latest", postgres.Filter{Limit: 2}, pick(3, 4)},
		{"everything at once", postgres.Filter{Namespace: "a", Subscription: "s1", EventID: "e1", Outcome: ledger.OutcomeSucceeded, Since: base, Limit: 1}, pick(4)},
		{"nothing", postgres.Filter{Namespace: "c"}, nil},
	} {
		got, err := w.Query(ctx, tc.f)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got\n%+v\nwant\n%+v", tc.name, got, tc.want)
		}
	}

	_, err := w.Query(ctx, postgres.Filter{Outcome: "Failed"})
	if err == nil || !strings.Contains(err.Error(), "--outcome") || !strings.Contains(err.Error(), "succeeded, retrying, failed or refused") {
		t.Errorf("unknown outcome: %v, want an error naming --outcome and the values", err)
	}

	missing, err := postgres.New(ctx, postgres.Options{DSN: sharedPostgres.DSN(), Table: "never_migrated"})
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	if _, err := missing.Query(ctx, postgres.Filter{}); err == nil || !strings.Contains(err.Error(), "--ledger-migrate") {
		t.Errorf("query of a missing table: %v, want the fix", err)
	}
	missing.Record(attempt(0))
	if err := missing.Flush(ctx); err == nil || !strings.Contains(err.Error(), "--ledger-print-ddl") || missing.Buffered() != 1 {
		t.Errorf("flush to a missing table: %v, %d buffered; want the fix and the row kept", err, missing.Buffered())
	}
}

// TestMigrateLetsAnOlderTableKeepRefusedDeliveries: a table made before outcome refused existed (its check
// allowed three outcomes; an odd name, so the constraint is found however it is spelled) takes a refused row
// after Migrate, and keeps its rows.
func TestMigrateLetsAnOlderTableKeepRefusedDeliveries(t *testing.T) {
	schema, table := "Ledger Data", fmt.Sprintf(`old"ledger %d`, tableCounter.Add(1))
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	old := strings.ReplaceAll(postgres.DDL(schema, table), `'failed', 'refused')`, `'failed')`)
	old = old[:strings.Index(old, "-- A table made before outcome 'refused'")] // the DDL of the release before
	if _, err := conn.Exec(ctx, old); err != nil {
		t.Fatal(err)
	}
	w, _ := newWriter(t, postgres.Options{Schema: schema, Table: table})
	w.Record(attempt(0))
	refused := attempt(1)
	refused.Outcome, refused.Number = ledger.OutcomeRefused, 0
	w.Record(refused)
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("flush a refused row to a migrated older table: %v", err)
	}
	got, err := w.Query(ctx, postgres.Filter{Outcome: ledger.OutcomeRefused})
	if err != nil || len(got) != 1 || got[0].EventID != refused.EventID {
		t.Fatalf("refused rows = %+v, %v; want the one recorded", got, err)
	}
	if _, err := conn.Exec(ctx, postgres.DDL(schema, table)); err != nil {
		t.Fatalf("apply DDL again after the migration: %v", err)
	}
	var checks int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'`,
		pgx.Identifier{schema, table}.Sanitize()).Scan(&checks); err != nil || checks != 1 {
		t.Fatalf("%d check constraints (%v), want the one on outcome", checks, err)
	}
}
