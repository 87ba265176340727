package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migrateLockKey serialises Migrate across replicas that start at the same time.
const migrateLockKey = "hookpost.ledger.migrate"

// columns are the columns a Writer fills, in the order of row; id and recorded_at take their defaults.
var columns = []string{
	"attempted_at", "namespace", "subscription", "delivery_name", "event_id", "event_type", "tenant_id",
	"collection", "attempt", "duration", "status_code", "error_class", "error", "response", "next_retry_at",
	"outcome", "test", "replay",
}

// table holds the names derived from a schema and table.
type table struct {
	schema, name string
}

func newTable(schema, name string) table {
	if schema == "" {
		schema = DefaultSchema
	}
	if name == "" {
		name = DefaultTable
	}
	return table{schema: schema, name: name}
}

func (t table) identifier() pgx.Identifier { return pgx.Identifier{t.schema, t.name} }

func (t table) qualified() string { return t.identifier().Sanitize() }

func (t table) qualifiedSibling(suffix string) string {
	return pgx.Identifier{t.schema, t.name + suffix}.Sanitize()
}

func (t table) sibling(suffix string) string { return pgx.Identifier{t.name + suffix}.Sanitize() }

// DDL returns the statements that create the ledger table and its indexes in schema (default "public") under
// tableName (default "webhook_deliveries"). Every statement is idempotent, so a DBA can apply it by hand and
// Migrate can apply it on every start.
//
// A row is one HTTP attempt. Optional values are NULL when absent: status_code without a response, error and
// error_class on success or when unknown, next_retry_at when no retry follows, tenant_id and collection when
// the event has none, response when the body was empty. response is bytea: it is the first KiB of whatever
// the receiver sent, which may be binary or cut in the middle of a UTF-8 sequence, and bytea keeps it exactly
// without an escaping convention to document (convert_from(response, 'UTF8') reads a text body in SQL).
func DDL(schema, tableName string) string {
	t := newTable(schema, tableName)
	var b strings.Builder
	if t.schema != DefaultSchema {
		fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s;\n\n", pgx.Identifier{t.schema}.Sanitize())
	}
	fmt.Fprintf(&b, `CREATE TABLE IF NOT EXISTS %[1]s (
    id            bigserial   PRIMARY KEY,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    attempted_at  timestamptz NOT NULL,
    namespace     text        NOT NULL,
    subscription  text        NOT NULL,
    delivery_name text        NOT NULL,
    event_id      text        NOT NULL,
    event_type    text        NOT NULL,
    tenant_id     text,
    collection    text,
    attempt       integer     NOT NULL,
    duration      interval    NOT NULL,
    status_code   integer,
    error_class   text,
    error         text,
    response      bytea,
    next_retry_at timestamptz,
    outcome       text        NOT NULL CHECK (outcome IN ('succeeded', 'retrying', 'failed')),
    test          boolean     NOT NULL DEFAULT false,
    replay        boolean     NOT NULL DEFAULT false
);

-- The DO blocks skip statements whose object exists: creating an index locks the table against Hookpost's
-- writes even when there is nothing to do.

-- A subscription's attempts since a time (kubectl hookpost history --subscription).
DO $hookpost$ BEGIN
    IF to_regclass(%[5]s) IS NULL THEN
        CREATE INDEX %[2]s ON %[1]s (namespace, subscription, attempted_at);
    END IF;
END $hookpost$;

-- An event's attempts, across its subscriptions (kubectl hookpost history --event).
DO $hookpost$ BEGIN
    IF to_regclass(%[6]s) IS NULL THEN
        CREATE INDEX %[3]s ON %[1]s (event_id);
    END IF;
END $hookpost$;

-- Retention deletes rows by age; history without a subscription or event reads the latest rows.
DO $hookpost$ BEGIN
    IF to_regclass(%[7]s) IS NULL THEN
        CREATE INDEX %[4]s ON %[1]s (attempted_at);
    END IF;
END $hookpost$;
`, t.qualified(), t.sibling("_subscription_idx"), t.sibling("_event_idx"), t.sibling("_attempted_at_idx"),
		quoteLiteral(t.qualifiedSibling("_subscription_idx")), quoteLiteral(t.qualifiedSibling("_event_idx")),
		quoteLiteral(t.qualifiedSibling("_attempted_at_idx")))
	return b.String()
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings, the default since 9.1).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Migrate applies DDL for the writer's table. Concurrent callers wait for each other.
func (w *Writer) Migrate(ctx context.Context) error {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin ledger migration: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", migrateLockKey); err != nil {
		return fmt.Errorf("lock ledger migration: %w", err)
	}
	// Creating an index for the first time locks the table: give up rather than hold Hookpost's own writes,
	// and anyone reading the ledger, back for long.
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
		return fmt.Errorf("set lock timeout for ledger migration: %w", err)
	}
	if _, err := tx.Exec(ctx, DDL(w.table.schema, w.table.name)); err != nil {
		return fmt.Errorf("create ledger table %s: %w", w.table.qualified(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit ledger migration: %w", err)
	}
	return nil
}
