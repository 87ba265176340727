package harness_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/hookpost/hookpost/test/harness"
)

func TestPostgresSurvivesRestartAndKill(t *testing.T) {
	pg := harness.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	exec(t, ctx, pg.DSN(), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	port := pg.Port()

	if err := pg.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	pg.Kill()
	if err := pg.Start(); err != nil {
		t.Fatalf("start after kill: %v", err)
	}
	if pg.Port() != port {
		t.Fatalf("port changed from %d to %d", port, pg.Port())
	}
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("row after restart and kill: v=%d err=%v", v, err)
	}
}

func exec(t *testing.T, ctx context.Context, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func TestNATSKeepsStreamsAcrossRestart(t *testing.T) {
	n := harness.StartNATS(t)
	url := n.URL()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "KEPT", Subjects: []string{"kept.>"}}); err != nil {
		t.Fatalf("add stream: %v", err)
	}
	if _, err := js.Publish("kept.one", []byte(`{}`)); err != nil {
		t.Fatalf("publish: %v", err)
	}

	if err := n.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if n.URL() != url {
		t.Fatalf("url changed from %s to %s", url, n.URL())
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := js.StreamInfo("KEPT")
		if err == nil && info.State.Msgs == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream after restart: info=%v err=%v", info, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
