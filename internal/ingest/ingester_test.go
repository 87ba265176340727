package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ingest"
	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// The suite runs ingest against a real kube-apiserver and etcd, a real PostgreSQL and a real NATS server.
var (
	cp *harness.ControlPlane
	pg *harness.Postgres
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if harness.OnlyFuzzing() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hookpost-ingest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if cp, err = harness.StartControlPlane(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	if pg, err = harness.StartPostgresProcess(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pg.Stop()
	return m.Run()
}

var counter atomic.Int64

// recorder counts dispatches per (subscription, event) around the real DeliveryCreator.
type recorder struct {
	next ingest.Dispatcher
	mu   sync.Mutex
	seen map[string]int
}

func (r *recorder) Dispatch(ctx context.Context, sub *ingest.Subscription, ev *source.Event, later ingest.Later) error {
	if err := r.next.Dispatch(ctx, sub, ev, later); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[sub.Namespace+"/"+sub.Name+"/"+ev.ID]++
	return nil
}

// startIngest runs ingesters for srcs in a manager, as the operator does, until the test ends.
func startIngest(t *testing.T, srcs ...source.Source) *recorder {
	t.Helper()
	return startIngestWith(t, ingest.Options{}, srcs...)
}

// startIngestWith is startIngest with options (batch size and retry delay are the tests').
func startIngestWith(t *testing.T, opts ingest.Options, srcs ...source.Source) *recorder {
	t.Helper()
	opts.BatchSize, opts.RetryDelay = 100, 200*time.Millisecond
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{Scheme: harness.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: ingest.DeliveryCreator{Client: mgr.GetClient()}, seen: map[string]int{}}
	for _, src := range srcs {
		if err := mgr.Add(ingest.New(src, mgr.GetCache(), rec, opts)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return rec
}

func namespace(t testing.TB) string {
	t.Helper()
	ns := fmt.Sprintf("ingest-%d", counter.Add(1))
	if err := cp.Client.Create(context.Background(), fixtures.Namespace(ns)); err != nil {
		t.Fatal(err)
	}
	return ns
}

func subscribe(t testing.TB, subs ...*hookpostv1.WebhookSubscription) {
	t.Helper()
	for _, s := range subs {
		if err := cp.Client.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	// Events must occur after the subscriptions exist (creation timestamps have one-second resolution).
	time.Sleep(1100 * time.Millisecond)
}

// deliveries returns "subscription/eventID" for every WebhookDelivery in ns, sorted.
func deliveries(t *testing.T, ns string) []string {
	t.Helper()
	list := &hookpostv1.WebhookDeliveryList{}
	if err := cp.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range list.Items {
		if d.Name != hookpostv1.DeliveryName(d.Spec.SubscriptionName, d.Spec.Event.ID) {
			t.Errorf("delivery %s is not named after (subscription, event id)", d.Name)
		}
		out = append(out, d.Spec.SubscriptionName+"/"+d.Spec.Event.ID)
	}
	sort.Strings(out)
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newOutbox(t testing.TB, opts postgres.Options) (*postgres.Source, string) {
	t.Helper()
	opts.DSN = pg.DSN()
	if opts.Table == "" {
		opts.Table = fmt.Sprintf("outbox_%d", counter.Add(1))
	}
	src, err := postgres.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return src, opts.Table
}

type row struct{ typ, tenant, collection, payload string }

// insert writes rows in one transaction, as an application does with its business data, and returns their
// event ids in order.
func insert(t testing.TB, table string, rows ...row) []string {
	t.Helper()
	return insertWith(t, postgres.InsertSQL("public", table)+" RETURNING event_id::text", rows...)
}

// insertWith writes rows with statement (parameters as postgres.InsertSQL's, returning the event id) in one
// transaction and returns their event ids in order.
func insertWith(t testing.TB, statement string, rows ...row) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		var id string
		err := tx.QueryRow(ctx, statement, r.typ, nullable(r.tenant), nullable(r.collection), r.payload).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestOutboxEventsBecomeOneDeliveryPerMatchingSubscription(t *testing.T) {
	ns := namespace(t)
	subscribe(t,
		fixtures.Subscription(ns, "orders", "https://example.com/o", fixtures.Events("order.*")),
		fixtures.Subscription(ns, "registrations", "https://example.com/r", fixtures.Events("user.registered")),
		fixtures.Subscription(ns, "tenant-7", "https://example.com/t", fixtures.Events("*"), fixtures.Filter([]string{"7"}, nil)),
		fixtures.Subscription(ns, "posts", "https://example.com/p", fixtures.Events("*"), fixtures.Filter(nil, []string{"posts"})),
	)
	src, table := newOutbox(t, postgres.Options{})
	ids := insert(t, table,
		row{"order.created", "7", "", `{"order_id":1}`},
		row{"user.registered", "123", "", `{"user_id":42}`},
		row{"insert", "", "posts", `{"_id":"64fd"}`},
		row{"category.deleted", "9", "", `{"category_id":3}`},
	)
	rec := startIngest(t, src)
	want := []string{"orders/" + ids[0], "posts/" + ids[2], "registrations/" + ids[1], "tenant-7/" + ids[0]}
	sort.Strings(want)
	waitFor(t, "the four deliveries", func() bool { return len(deliveries(t, ns)) >= len(want) })
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	if got := deliveries(t, ns); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	d := &hookpostv1.WebhookDelivery{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: hookpostv1.DeliveryName("orders", ids[0])}, d); err != nil {
		t.Fatal(err)
	}
	if d.Labels[hookpostv1.LabelSubscription] != "orders" || d.Labels[hookpostv1.LabelEventType] != "order.created" {
		t.Errorf("labels = %v", d.Labels)
	}
	if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].Name != "orders" {
		t.Errorf("owner references = %v, want the subscription", d.OwnerReferences)
	}
	if d.Spec.Event.TenantID != "7" || string(d.Spec.Data.Raw) != `{"order_id":1}` {
		t.Errorf("event = %+v data = %s", d.Spec.Event, d.Spec.Data.Raw)
	}
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	for k, n := range rec.seen {
		if n != 1 {
			t.Errorf("%s dispatched %d times", k, n)
		}
	}
}

func TestMalformedRowIsSetAsideWhileTheRowsBehindItFlow(t *testing.T) {
	ns := namespace(t)
	subscribe(t, fixtures.Subscription(ns, "all", "https://example.com/a"))
	var rejected atomic.Int64
	src, table := newOutbox(t, postgres.Options{OnReject: func(source.Rejection) { rejected.Add(1) }})
	ids := insert(t, table,
		row{"order.created", "", "", `{"n":1}`},
		row{"order.created", "", "", `"just a string"`},
		row{"order.created", "", "", `{"n":3}`},
	)
	startIngest(t, src)
	waitFor(t, "the two good rows' deliveries", func() bool { return len(deliveries(t, ns)) == 2 })
	if got, want := deliveries(t, ns), []string{"all/" + ids[0], "all/" + ids[2]}; fmt.Sprint(got) != fmt.Sprint(sortedCopy(want)) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	var status, errText string
	if err := queryRow(t, "SELECT status, error FROM "+table+" WHERE event_id = $1", ids[1]).Scan(&status, &errText); err != nil {
		t.Fatal(err)
	}
	if status != "rejected" || errText == "" {
		t.Fatalf("malformed row: status %q error %q, want rejected with its error", status, errText)
	}
	if rejected.Load() != 1 {
		t.Fatalf("OnReject called %d times, want 1", rejected.Load())
	}
}

func TestTwoIngestersOnOneOutboxNeverDispatchAnEventTwice(t *testing.T) {
	ns := namespace(t)
	subscribe(t, fixtures.Subscription(ns, "all", "https://example.com/a"))
	table := fmt.Sprintf("outbox_%d", counter.Add(1))
	a, _ := newOutbox(t, postgres.Options{Table: table})
	b, _ := newOutbox(t, postgres.Options{Table: table})
	const n = 600
	rows := make([]row, n)
	for i := range rows {
		rows[i] = row{"order.created", "", "", fmt.Sprintf(`{"n":%d}`, i)}
	}
	insert(t, table, rows...)
	recA, recB := startIngest(t, a), startIngest(t, b)
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	waitFor(t, "every delivery", func() bool { return len(deliveries(t, ns)) == n })
	recA.mu.Lock()
	recB.mu.Lock()
	defer recA.mu.Unlock()
	defer recB.mu.Unlock()
	// Other tests' subscriptions match these events too (the cache holds every namespace): count this one's.
	mine := func(r *recorder) map[string]int {
		out := map[string]int{}
		for k, v := range r.seen {
			if strings.HasPrefix(k, ns+"/all/") {
				out[k] = v
			}
		}
		return out
	}
	a2, b2 := mine(recA), mine(recB)
	both := 0
	for k, v := range a2 {
		if v != 1 || b2[k] > 0 {
			both++
		}
	}
	if both > 0 || len(a2)+len(b2) != n {
		t.Fatalf("ingester A dispatched %d, B %d, %d twice: want %d in all and none twice", len(a2), len(b2), both, n)
	}
	t.Logf("ingester A took %d events, B %d", len(a2), len(b2))
}

func TestJetStreamEventsBecomeDeliveriesAndDuplicatesAreDropped(t *testing.T) {
	ns := namespace(t)
	subscribe(t,
		fixtures.Subscription(ns, "orders", "https://example.com/o", fixtures.Events("order.*")),
		fixtures.Subscription(ns, "tenant-5", "https://example.com/t", fixtures.Events("*"), fixtures.Filter([]string{"5"}, nil)),
	)
	src, js, prefix := newStream(t)
	now := time.Now()
	events := []source.Event{
		{ID: "e1", Type: "order.created", TenantID: "5", OccurredAt: now, Data: json.RawMessage(`{"order_id":1}`)},
		{ID: "e2", Type: "user.registered", TenantID: "5", OccurredAt: now, Data: json.RawMessage(`{"user_id":2}`)},
		{ID: "e3", Type: "user.registered", TenantID: "6", OccurredAt: now, Data: json.RawMessage(`{"user_id":3}`)},
		{ID: "e1", Type: "order.created", TenantID: "5", OccurredAt: now, Data: json.RawMessage(`{"order_id":1}`)},
	}
	for _, ev := range events {
		if err := natssource.Publish(context.Background(), js, prefix, ev); err != nil {
			t.Fatal(err)
		}
	}
	startIngest(t, src)
	want := []string{"orders/e1", "tenant-5/e1", "tenant-5/e2"}
	waitFor(t, "three deliveries", func() bool { return len(deliveries(t, ns)) >= len(want) })
	time.Sleep(300 * time.Millisecond)
	if got := deliveries(t, ns); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
}

// newStream starts a NATS server with a stream of its own and returns the JetStream source reading it, a producer's
// JetStream and the subject prefix to publish under.
func newStream(t *testing.T) (*natssource.Source, jetstream.JetStream, string) {
	t.Helper()
	srv := harness.StartNATS(t)
	stream := fmt.Sprintf("EVENTS%d", counter.Add(1))
	prefix := fmt.Sprintf("hp%d.events.", counter.Load())
	src, err := natssource.New(context.Background(), natssource.Options{URL: srv.URL(), Stream: stream, SubjectPrefix: prefix, CreateStream: true})
	if err != nil {
		t.Fatal(err)
	}
	_, js := srv.Producer(t)
	return src, js, prefix
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

func queryRow(t *testing.T, sql string, args ...any) pgx.Row {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn.QueryRow(context.Background(), sql, args...)
}

func pendingRows(t testing.TB, table string) int {
	t.Helper()
	// Its own connection, closed at once: waitFor polls this every 50 ms, and connections kept until the test
	// ends would exhaust the server's before a wait times out with its own message.
	conn, err := pgx.Connect(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE status = 'pending'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
