package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

// eventSource is a source the bench runs the operator against. Each run opens its own instance, so no run sees
// another's events.
type eventSource interface {
	name() string
	open(ctx context.Context, run string) (sourceRun, error)
}

// sourceRun is one run's instance of a source.
type sourceRun interface {
	// operatorArgs point the operator at the instance.
	operatorArgs() []string
	// publish produces event seq with data.sent_at_ns set to the time it is produced.
	publish(ctx context.Context, seq int) error
	// processes are the instance's server processes that run outside the bench.
	processes() []measured
	// checkLedger counts each produced event's success rows for namespace in the delivery ledger; nil when the
	// instance has no ledger.
	checkLedger(ctx context.Context, namespace string) (*ledgerCounts, error)
	close()
}

// eventData is the payload of event seq: the receiver reads sent_at_ns to measure latency.
func eventData(seq int, now time.Time) map[string]any {
	return map[string]any{"seq": seq, "sent_at_ns": now.UnixNano()}
}

// outboxSource is the PostgreSQL outbox: one cluster for the whole bench, a database per run holding the
// outbox and the delivery ledger, which the operator writes to the outbox's database by default.
type outboxSource struct {
	pg        *harness.Postgres
	producers int
}

func (s *outboxSource) name() string { return "postgres" }

func (s *outboxSource) open(ctx context.Context, run string) (sourceRun, error) {
	db := "bench_" + strings.ReplaceAll(run, "-", "_")
	if err := s.pg.CreateDatabase(ctx, db); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(s.pg.DSNFor(db))
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(s.producers + 1)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Both tables exist before the operator starts, as a DBA applying the printed DDL would have them; the
	// operator runs with its defaults (no --postgres-migrate, no --ledger-migrate).
	for _, ddl := range []string{postgres.DDL("", ""), ledgerpg.AllDDL("", "")} {
		if _, err := pool.Exec(ctx, ddl); err != nil {
			pool.Close()
			return nil, fmt.Errorf("create the outbox and ledger tables: %w", err)
		}
	}
	return &outboxRun{pg: s.pg, dsn: s.pg.DSNFor(db), pool: pool, insert: postgres.InsertSQL("", "")}, nil
}

// outboxRun is one run's database.
type outboxRun struct {
	pg     *harness.Postgres
	dsn    string
	pool   *pgxpool.Pool
	insert string
}

func (r *outboxRun) operatorArgs() []string { return []string{"--postgres-dsn=" + r.dsn} }

// publish inserts one row in a transaction of its own, with the statement docs/outbox.md gives producers, as an
// application committing one business change at a time does.
func (r *outboxRun) publish(ctx context.Context, seq int) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, r.insert, "order.created", "1", "orders", eventData(seq, time.Now()))
		return err
	})
}

func (r *outboxRun) processes() []measured {
	return []measured{{name: processPostgres, pids: r.pg.Pids}}
}

func (r *outboxRun) checkLedger(ctx context.Context, namespace string) (*ledgerCounts, error) {
	return countLedgerSuccesses(ctx, r.pool, namespace)
}

func (r *outboxRun) close() { r.pool.Close() }

// natsSource is NATS JetStream: an in-process server per run, so its CPU and memory count as the bench's.
type natsSource struct {
	dir string
}

func (s *natsSource) name() string { return "nats" }

func (s *natsSource) open(ctx context.Context, run string) (sourceRun, error) {
	srv, err := harness.StartNATSServer(filepath.Join(s.dir, "nats-"+run))
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	r := &natsRun{srv: srv, nc: nc}
	if r.js, err = jetstream.New(nc); err != nil {
		r.close()
		return nil, err
	}
	// The stream as the operator would create it, so events can be published before it starts.
	if _, err := r.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: natssource.DefaultStream,
		Subjects: []string{natssource.DefaultSubjectPrefix + ">"}, Storage: jetstream.FileStorage,
		Duplicates: natssource.DefaultDuplicateWindow}); err != nil {
		r.close()
		return nil, fmt.Errorf("create stream: %w", err)
	}
	return r, nil
}

// natsRun is one run's server.
type natsRun struct {
	srv *harness.NATS
	nc  *nats.Conn
	js  jetstream.JetStream
}

func (r *natsRun) operatorArgs() []string { return []string{"--nats-url=" + r.srv.URL()} }

func (r *natsRun) publish(ctx context.Context, seq int) error {
	now := time.Now()
	data, err := json.Marshal(eventData(seq, now))
	if err != nil {
		return err
	}
	return natssource.Publish(ctx, r.js, "", source.Event{ID: fmt.Sprintf("bench-%d", seq), Type: "order.created",
		TenantID: "1", Collection: "orders", OccurredAt: now, Data: data})
}

func (r *natsRun) processes() []measured { return nil }

// checkLedger finds no ledger: without a PostgreSQL DSN the operator keeps none.
func (r *natsRun) checkLedger(context.Context, string) (*ledgerCounts, error) { return nil, nil }

func (r *natsRun) close() {
	r.nc.Close()
	r.srv.Shutdown()
}
