package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// maxIdentifierLength is PostgreSQL's NAMEDATALEN-1: longer channel names are refused by pg_notify.
const maxIdentifierLength = 63

// migrateLockKey serialises Migrate across replicas that start at the same time.
const migrateLockKey = "hookpost.outbox.migrate"

// table holds the quoted names derived from a schema and table.
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

func (t table) qualified() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

func (t table) qualifiedSibling(suffix string) string {
	return pgx.Identifier{t.schema, t.name + suffix}.Sanitize()
}

func (t table) sibling(suffix string) string { return pgx.Identifier{t.name + suffix}.Sanitize() }

var notChannelSafe = regexp.MustCompile(`[^a-z0-9_]+`)

// ChannelName returns the LISTEN/NOTIFY channel the outbox trigger notifies on. It is derived from the schema and
// table, reduced to [a-z0-9_] so it needs no quoting anywhere, and shortened with a hash to fit 63 bytes.
func ChannelName(schema, tableName string) string {
	t := newTable(schema, tableName)
	name := "outbox_" + notChannelSafe.ReplaceAllString(strings.ToLower(t.schema), "_") + "_" +
		notChannelSafe.ReplaceAllString(strings.ToLower(t.name), "_")
	if len(name) <= maxIdentifierLength {
		return name
	}
	sum := sha256.Sum256([]byte(t.schema + "." + t.name))
	hash := hex.EncodeToString(sum[:8])
	return name[:maxIdentifierLength-len(hash)-1] + "_" + hash
}

// DDL returns the statements that create the outbox table, its indexes and its notify trigger in schema (default
// "public") under tableName (default "integration_outbox"). Every statement is idempotent, so a DBA can apply it
// by hand and Migrate can apply it on every start.
//
// Producers fill event_type, tenant_id, collection and payload (see InsertSQL); event_id and occurred_at have
// defaults. status, error, processed_at and claimed_until are Hookpost's bookkeeping: a row is pending until
// Hookpost has created its deliveries (done) or set it aside as malformed (rejected, with error naming the fix;
// set status back to 'pending' after fixing the row to retry it). claimed_until is the lease of the replica
// working on a pending row (see claim.go); NULL or a past time means nobody is.
//
// A table created before claimed_until existed gets the column from the same statements, so upgrading needs no
// separate migration step. The pending index leaves claimed_until out: the rows leased at any time are a few
// batches per replica, cheap to skip, and an unchanged index spares upgraded tables a rebuild.
func DDL(schema, tableName string) string {
	t := newTable(schema, tableName)
	var b strings.Builder
	if t.schema != DefaultSchema {
		fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s;\n\n", pgx.Identifier{t.schema}.Sanitize())
	}
	fmt.Fprintf(&b, `CREATE TABLE IF NOT EXISTS %[1]s (
    id            bigserial   PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    event_type    text        NOT NULL,
    tenant_id     text,
    collection    text,
    payload       jsonb       NOT NULL,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'rejected')),
    error         text,
    processed_at  timestamptz,
    claimed_until timestamptz
);

-- The DO blocks skip statements whose object exists: adding a column or creating an index or trigger locks the
-- table against the application's inserts even when there is nothing to do.

-- Tables created before Hookpost leased its claims lack the lease column.
DO $hookpost$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = %[9]s::regclass AND attname = 'claimed_until' AND NOT attisdropped) THEN
        ALTER TABLE %[1]s ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
    END IF;
END $hookpost$;

-- Claims scan only pending rows, in id order, and skip those still leased.
DO $hookpost$ BEGIN
    IF to_regclass(%[7]s) IS NULL THEN
        CREATE INDEX %[2]s ON %[1]s (id) WHERE status = 'pending';
    END IF;
END $hookpost$;

-- Retention deletes done rows by age.
DO $hookpost$ BEGIN
    IF to_regclass(%[8]s) IS NULL THEN
        CREATE INDEX %[3]s ON %[1]s (processed_at) WHERE status = 'done';
    END IF;
END $hookpost$;

-- One notification per inserting statement wakes waiting Hookpost replicas; polling covers a lost one.
CREATE OR REPLACE FUNCTION %[4]s() RETURNS trigger LANGUAGE plpgsql AS $hookpost$
BEGIN
    PERFORM pg_notify('%[5]s', '');
    RETURN NULL;
END
$hookpost$;

DO $hookpost$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = %[9]s::regclass AND tgfoid = %[10]s::regproc) THEN
        CREATE TRIGGER %[6]s AFTER INSERT ON %[1]s FOR EACH STATEMENT EXECUTE FUNCTION %[4]s();
    END IF;
END $hookpost$;
`, t.qualified(), t.sibling("_pending_idx"), t.sibling("_done_idx"), t.qualifiedSibling("_notify"),
		ChannelName(t.schema, t.name), t.sibling("_notify"),
		quoteLiteral(t.qualifiedSibling("_pending_idx")), quoteLiteral(t.qualifiedSibling("_done_idx")),
		quoteLiteral(t.qualified()), quoteLiteral(t.qualifiedSibling("_notify")))
	return b.String()
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings, the default since 9.1).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// InsertSQL returns the statement a producer runs in its own business transaction to record an event, with
// parameters $1 event_type, $2 tenant_id, $3 collection and $4 payload (a JSON object).
func InsertSQL(schema, tableName string) string {
	return fmt.Sprintf("INSERT INTO %s (event_type, tenant_id, collection, payload) VALUES ($1, $2, $3, $4)",
		newTable(schema, tableName).qualified())
}

// Migrate applies DDL for the source's table. Concurrent callers wait for each other.
func (s *Source) Migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin outbox migration: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", migrateLockKey); err != nil {
		return fmt.Errorf("lock outbox migration: %w", err)
	}
	// Creating the indexes or trigger for the first time locks the table: give up rather than hold the
	// application's inserts back for long behind a busy table.
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
		return fmt.Errorf("set lock timeout for outbox migration: %w", err)
	}
	if _, err := tx.Exec(ctx, DDL(s.table.schema, s.table.name)); err != nil {
		return fmt.Errorf("create outbox table %s: %w", s.table.qualified(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit outbox migration: %w", err)
	}
	return nil
}
