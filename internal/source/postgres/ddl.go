package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/hookpost/hookpost/internal/pgschema"
)

// maxIdentifierLength is PostgreSQL's NAMEDATALEN-1: longer channel names are refused by pg_notify.
const maxIdentifierLength = 63

// migrateLockKey serialises Migrate across replicas that start at the same time.
const migrateLockKey = "hookpost.outbox.migrate"

var notChannelSafe = regexp.MustCompile(`[^a-z0-9_]+`)

// ChannelName returns the LISTEN/NOTIFY channel the outbox trigger notifies on. It is derived from the schema and
// table, reduced to [a-z0-9_] so it needs no quoting anywhere, and shortened with a hash to fit 63 bytes.
func ChannelName(schema, tableName string) string {
	t := pgschema.NewTable(schema, tableName, DefaultTable)
	name := "outbox_" + notChannelSafe.ReplaceAllString(strings.ToLower(t.Schema), "_") + "_" +
		notChannelSafe.ReplaceAllString(strings.ToLower(t.Name), "_")
	if len(name) <= maxIdentifierLength {
		return name
	}
	sum := sha256.Sum256([]byte(t.Schema + "." + t.Name))
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
	t := pgschema.NewTable(schema, tableName, DefaultTable)
	var b strings.Builder
	b.WriteString(t.CreateSchema())
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
`, t.Qualified(), t.Sibling("_pending_idx"), t.Sibling("_done_idx"), t.QualifiedSibling("_notify"),
		ChannelName(t.Schema, t.Name), t.Sibling("_notify"),
		pgschema.QuoteLiteral(t.QualifiedSibling("_pending_idx")), pgschema.QuoteLiteral(t.QualifiedSibling("_done_idx")),
		pgschema.QuoteLiteral(t.Qualified()), pgschema.QuoteLiteral(t.QualifiedSibling("_notify")))
	return b.String()
}

// InsertSQL returns the statement a producer runs in its own business transaction to record an event, with
// parameters $1 event_type, $2 tenant_id, $3 collection and $4 payload (a JSON object).
func InsertSQL(schema, tableName string) string {
	return fmt.Sprintf("INSERT INTO %s (event_type, tenant_id, collection, payload) VALUES ($1, $2, $3, $4)",
		pgschema.NewTable(schema, tableName, DefaultTable).Qualified())
}

// Migrate applies DDL for the source's table. Concurrent callers wait for each other.
func (s *Source) Migrate(ctx context.Context) error {
	return pgschema.Apply(ctx, s.pool, migrateLockKey, "outbox table "+s.table.Qualified(), DDL(s.table.Schema, s.table.Name))
}
