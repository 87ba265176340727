package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/hookpost/hookpost/internal/pgschema"
)

// migrateLockKey serialises Migrate across replicas that start at the same time.
const migrateLockKey = "hookpost.ledger.migrate"

// columns are the columns a Writer fills, in the order of row; id and recorded_at take their defaults.
var columns = []string{
	"attempted_at", "namespace", "subscription", "delivery_name", "event_id", "event_type", "tenant_id",
	"collection", "attempt", "duration", "status_code", "error_class", "error", "response", "next_retry_at",
	"outcome", "test", "replay",
}

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
	t := pgschema.NewTable(schema, tableName, DefaultTable)
	var b strings.Builder
	b.WriteString(t.CreateSchema())
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
    outcome       text        NOT NULL CHECK (outcome IN ('succeeded', 'retrying', 'failed', 'refused')),
    test          boolean     NOT NULL DEFAULT false,
    replay        boolean     NOT NULL DEFAULT false
);

-- A table made before outcome 'refused' existed gets it added to its check; NOT VALID skips re-reading the rows,
-- which passed the narrower check.
DO $hookpost$
DECLARE
    old text;
BEGIN
    SELECT conname INTO old FROM pg_constraint
     WHERE conrelid = %[8]s::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%%outcome%%' AND pg_get_constraintdef(oid) NOT LIKE '%%refused%%';
    IF old IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %%s DROP CONSTRAINT %%I', %[8]s::regclass, old);
        EXECUTE format('ALTER TABLE %%s ADD CONSTRAINT %%I CHECK (outcome IN (''succeeded'', ''retrying'', ''failed'', ''refused'')) NOT VALID',
            %[8]s::regclass, old);
    END IF;
END $hookpost$;

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
`, t.Qualified(), t.Sibling("_subscription_idx"), t.Sibling("_event_idx"), t.Sibling("_attempted_at_idx"),
		pgschema.QuoteLiteral(t.QualifiedSibling("_subscription_idx")), pgschema.QuoteLiteral(t.QualifiedSibling("_event_idx")),
		pgschema.QuoteLiteral(t.QualifiedSibling("_attempted_at_idx")), pgschema.QuoteLiteral(t.Qualified()))
	return b.String()
}

// AllDDL is every statement of the ledger: its table (DDL), the parked deliveries' (ParkingDDL) and the pruned
// deliveries' (PrunedDDL). manager --ledger-print-ddl prints it and Migrate applies it.
func AllDDL(schema, tableName string) string {
	return DDL(schema, tableName) + "\n" + ParkingDDL(schema, tableName) + "\n" + PrunedDDL(schema, tableName)
}

// Migrate applies AllDDL for the writer's table. Concurrent callers wait for each other.
func (w *Writer) Migrate(ctx context.Context) error {
	return pgschema.Apply(ctx, w.pool, migrateLockKey, "ledger table "+w.table.Qualified(), AllDDL(w.table.Schema, w.table.Name))
}
