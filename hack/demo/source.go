package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

// eventSource is the server events enter Hookpost through, started by the demo.
type eventSource interface {
	// describe names the source and its address for the user.
	describe() string
	// operatorArgs are the manager flags that connect the operator to it.
	operatorArgs() []string
	// publish records the events as a producer would, once the operator has created the stream or table.
	publish(ctx context.Context, events []sampleEvent) error
	stop()
}

func startSource(kind, dir string) (eventSource, error) {
	switch kind {
	case "nats":
		n, err := harness.StartNATSServer(filepath.Join(dir, "nats"))
		if err != nil {
			return nil, err
		}
		return &natsDemoSource{server: n}, nil
	case "postgres":
		pgDir := filepath.Join(dir, "postgres")
		if err := os.MkdirAll(pgDir, 0o700); err != nil {
			return nil, err
		}
		pg, err := harness.StartPostgresProcess(pgDir)
		if err != nil {
			return nil, err
		}
		return &postgresDemoSource{pg: pg}, nil
	}
	return nil, fmt.Errorf("DEMO_SOURCE=%q: use nats (the default) or postgres", kind)
}

// natsDemoSource is an embedded NATS server with JetStream, in this process.
type natsDemoSource struct{ server *harness.NATS }

func (s *natsDemoSource) describe() string { return "NATS JetStream at " + s.server.URL() }

func (s *natsDemoSource) operatorArgs() []string {
	return []string{"--nats-url", s.server.URL(), "--nats-create-stream"}
}

func (s *natsDemoSource) publish(ctx context.Context, events []sampleEvent) error {
	nc, err := nats.Connect(s.server.URL())
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// The operator creates the stream (--nats-create-stream) when its source starts.
	if err := poll(ctx, 60*time.Second, func() (bool, error) {
		_, err := js.Stream(ctx, natssource.DefaultStream)
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("wait for the operator to create stream %s: %w", natssource.DefaultStream, err)
	}
	for _, ev := range events {
		err := natssource.Publish(ctx, js, "", source.Event{
			ID: newEventID(), Type: ev.eventType, TenantID: ev.tenant, Collection: ev.collection,
			OccurredAt: time.Now(), Data: json.RawMessage(ev.data),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *natsDemoSource) stop() { s.server.Shutdown() }

// newEventID returns a random event id; Postgres outbox rows get a uuid from the table's default instead.
func newEventID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "evt_" + hex.EncodeToString(b)
}

// postgresDemoSource is a throwaway PostgreSQL cluster holding the outbox table.
type postgresDemoSource struct{ pg *harness.Postgres }

func (s *postgresDemoSource) describe() string {
	return fmt.Sprintf("PostgreSQL outbox at 127.0.0.1:%d", s.pg.Port())
}

func (s *postgresDemoSource) operatorArgs() []string {
	return []string{"--postgres-dsn", s.pg.DSN(), "--postgres-migrate"}
}

func (s *postgresDemoSource) publish(ctx context.Context, events []sampleEvent) error {
	conn, err := pgx.Connect(ctx, s.pg.DSN())
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The operator creates the outbox table (--postgres-migrate) before it starts.
	if err := poll(ctx, 60*time.Second, func() (bool, error) {
		var exists bool
		err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", postgres.DefaultSchema+"."+postgres.DefaultTable).Scan(&exists)
		return exists, err
	}); err != nil {
		return fmt.Errorf("wait for the operator to create the outbox table: %w", err)
	}
	// One transaction, as a producer records events with its business change.
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, ev := range events {
		if _, err := tx.Exec(ctx, postgres.InsertSQL("", ""), ev.eventType, nullable(ev.tenant), nullable(ev.collection), ev.data); err != nil {
			return fmt.Errorf("insert %s into the outbox: %w", ev.eventType, err)
		}
	}
	return tx.Commit(ctx)
}

func (s *postgresDemoSource) stop() { s.pg.Stop() }

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// errTimeout is returned by poll when the condition is still false at the deadline.
var errTimeout = errors.New("timed out")

// poll calls done every 200ms until it reports true, fails, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s", errTimeout, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
