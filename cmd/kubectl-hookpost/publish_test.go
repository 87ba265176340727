package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	natssource "github.com/hookpost/hookpost/internal/source/nats"
	pgsource "github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

func TestPublishPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := harness.StartPostgres(t)
	for _, o := range []pgsource.Options{{DSN: pg.DSN()}, {DSN: pg.DSN(), Schema: "shop", Table: "events_outbox"}} {
		src, err := pgsource.New(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		_ = src.Close()
	}

	id := uuid.NewString()
	out := mustRun(t, "publish", "--postgres", pg.DSN(), "--type", "order.created", "--tenant", "123", "--collection", "orders", "--id", id)
	if !strings.Contains(out, id) {
		t.Errorf("publish output lacks the event id:\n%s", out)
	}
	mustRun(t, "publish", "--postgres", pg.DSN(), "--schema", "shop", "--table", "events_outbox", "--type", "insert", "--data", `{"_id":"1","title":"Hello"}`)

	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var eventID, eventType, tenant, collection, payload, status string
	err = conn.QueryRow(ctx, `SELECT event_id::text, event_type, tenant_id, collection, payload::text, status FROM integration_outbox`).
		Scan(&eventID, &eventType, &tenant, &collection, &payload, &status)
	if err != nil {
		t.Fatal(err)
	}
	if eventID != id || eventType != "order.created" || tenant != "123" || collection != "orders" || status != "pending" ||
		!jsonEqual(t, []byte(payload), []byte(sampleData["order.created"])) {
		t.Errorf("row = %s %s %s %s %s %s", eventID, eventType, tenant, collection, payload, status)
	}
	var n int
	var nullTenant *string
	if err := conn.QueryRow(ctx, `SELECT count(*), max(tenant_id) FROM shop.events_outbox WHERE event_type = 'insert' AND payload->>'title' = 'Hello'`).Scan(&n, &nullTenant); err != nil {
		t.Fatal(err)
	}
	if n != 1 || nullTenant != nil {
		t.Errorf("shop.events_outbox has %d matching rows, tenant %v; want 1 with NULL tenant", n, nullTenant)
	}

	// The source itself reads the event back as published.
	src, err := pgsource.New(ctx, pgsource.Options{DSN: pg.DSN()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	batch, err := src.Next(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	evs := batch.Events()
	if len(evs) != 1 || evs[0].ID != id || evs[0].Type != "order.created" || evs[0].TenantID != "123" || evs[0].Collection != "orders" {
		t.Errorf("source read %+v", evs)
	}
	_ = batch.Ack(ctx)

	if r := run(t, "", "publish", "--postgres", pg.DSN(), "--type", "order.created", "--data", `[1,2]`); r.code == 0 || !strings.Contains(r.stderr, "not an object") {
		t.Errorf("publishing a non-object: exit %d: %s", r.code, r.stderr)
	}
}

func TestPublishNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := harness.StartNATS(t)
	// The source creates the stream capturing its subject prefix, as the operator does with stream creation on.
	src, err := natssource.New(ctx, natssource.Options{URL: n.URL(), CreateStream: true, SubjectPrefix: "shop.events."})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()

	data := `{"_id":"64fd1234abcd5678ef901234","title":"Hello World"}`
	out := mustRun(t, "publish", "--nats", n.URL(), "--subject-prefix", "shop.events.", "--type", "insert",
		"--tenant", "7", "--collection", "posts", "--id", "evt-42", "--data", data)
	if !strings.Contains(out, "shop.events.insert") {
		t.Errorf("publish output lacks the subject:\n%s", out)
	}

	_, js := n.Producer(t)
	stream, err := js.Stream(ctx, natssource.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "shop.events.insert" || string(msg.Data) != data {
		t.Errorf("message %s: %s", msg.Subject, msg.Data)
	}
	for h, want := range map[string]string{natssource.HeaderMsgID: "evt-42", natssource.HeaderTenantID: "7", natssource.HeaderCollection: "posts"} {
		if got := msg.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, msg.Header.Get(natssource.HeaderOccurredAt)); err != nil {
		t.Errorf("header %s: %v", natssource.HeaderOccurredAt, err)
	}

	// The source reads it back as the event that was published.
	batch, err := src.Next(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	evs := batch.Events()
	if len(evs) != 1 || evs[0].ID != "evt-42" || evs[0].Type != "insert" || evs[0].Collection != "posts" || evs[0].TenantID != "7" {
		raw, _ := json.Marshal(evs)
		t.Errorf("source read %s", raw)
	}
	_ = batch.Ack(ctx)

	// Without a stream for the prefix, publish says what is missing.
	if r := run(t, "", "publish", "--nats", n.URL(), "--type", "insert", "--data", data, "--timeout", "5s"); r.code == 0 || !strings.Contains(r.stderr, "no JetStream stream") {
		t.Errorf("publish without a stream: exit %d: %s", r.code, r.stderr)
	}
}
