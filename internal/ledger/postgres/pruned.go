package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/pgschema"
)

// PrunedSuffix is appended to the ledger table's name to name the table of pruned deliveries
// (webhook_deliveries_pruned by default).
const PrunedSuffix = "_pruned"

// PrunedDDL returns the idempotent statements that create the table of pruned deliveries next to the ledger table
// ledgerTable (default "webhook_deliveries") in schema. A row is a finished WebhookDelivery deleted beyond its
// subscription's history limits, with its event, written just before the delete; the primary key makes a delivery
// pruned twice (replayed, then pruned again) one row. The index serves a replay, which reads a namespace's pruned
// deliveries by event time; retention deletes rows by pruned_at, like attempts by attempted_at.
func PrunedDDL(schema, ledgerTable string) string {
	t := prunedTable(schema, ledgerTable)
	var b strings.Builder
	b.WriteString(t.CreateSchema())
	fmt.Fprintf(&b, `CREATE TABLE IF NOT EXISTS %[1]s (
    namespace     text        NOT NULL,
    delivery_name text        NOT NULL,
    subscription  text        NOT NULL,
    event_id      text        NOT NULL,
    event_type    text        NOT NULL,
    tenant_id     text,
    collection    text,
    occurred_at   timestamptz NOT NULL,
    data          bytea,
    phase         text        NOT NULL,
    reason        text,
    created_at    timestamptz NOT NULL,
    pruned_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, delivery_name)
);

-- A replay's selection: a namespace's pruned deliveries by event time.
DO $hookpost$ BEGIN
    IF to_regclass(%[3]s) IS NULL THEN
        CREATE INDEX %[2]s ON %[1]s (namespace, occurred_at);
    END IF;
END $hookpost$;

-- Retention deletes rows by age.
DO $hookpost$ BEGIN
    IF to_regclass(%[5]s) IS NULL THEN
        CREATE INDEX %[4]s ON %[1]s (pruned_at);
    END IF;
END $hookpost$;
`, t.Qualified(), t.Sibling("_event_time_idx"), pgschema.QuoteLiteral(t.QualifiedSibling("_event_time_idx")),
		t.Sibling("_pruned_at_idx"), pgschema.QuoteLiteral(t.QualifiedSibling("_pruned_at_idx")))
	return b.String()
}

func prunedTable(schema, ledgerTable string) pgschema.Table {
	return besideLedger(schema, ledgerTable, PrunedSuffix)
}

// PrunedDeliveries is the table of pruned deliveries, in the ledger's database.
type PrunedDeliveries struct {
	pool  *pgxpool.Pool
	table string // quoted
}

var _ ledger.PrunedStore = (*PrunedDeliveries)(nil)

// Pruned returns the table of pruned deliveries next to the writer's ledger table, on the writer's connections.
func (w *Writer) Pruned() *PrunedDeliveries {
	return &PrunedDeliveries{pool: w.pool, table: prunedTable(w.table.Schema, w.table.Name).Qualified()}
}

// KeepPruned writes ds in one transaction; a delivery already kept is replaced.
func (p *PrunedDeliveries) KeepPruned(ctx context.Context, ds []ledger.Pruned) error {
	if len(ds) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, d := range ds {
		b.Queue(`INSERT INTO `+p.table+` (namespace, delivery_name, subscription, event_id, event_type, tenant_id,
    collection, occurred_at, data, phase, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (namespace, delivery_name) DO UPDATE SET subscription = EXCLUDED.subscription, event_id = EXCLUDED.event_id,
    event_type = EXCLUDED.event_type, tenant_id = EXCLUDED.tenant_id, collection = EXCLUDED.collection,
    occurred_at = EXCLUDED.occurred_at, data = EXCLUDED.data, phase = EXCLUDED.phase, reason = EXCLUDED.reason,
    created_at = EXCLUDED.created_at, pruned_at = now()`,
			validText(d.Namespace), validText(d.DeliveryName), validText(d.Subscription), validText(d.EventID),
			validText(d.EventType), nullIfZero(validText(d.TenantID)), nullIfZero(validText(d.Collection)), d.OccurredAt,
			d.Data, d.Phase, nullIfZero(d.Reason), d.Created)
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return fmt.Errorf("keep %d pruned deliveries in %s: %w", len(ds), p.table, err)
	}
	return nil
}

// Pruned returns up to q.Limit pruned deliveries q selects, oldest event first (then by name).
func (p *PrunedDeliveries) Pruned(ctx context.Context, q ledger.PrunedQuery) ([]ledger.Pruned, error) {
	var (
		where = []string{"namespace = $1"}
		args  = []any{q.Namespace}
	)
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.Subscription != "" {
		add("subscription = $%d", q.Subscription)
	}
	if !q.CreatedBefore.IsZero() {
		add("created_at <= $%d", q.CreatedBefore)
	}
	if !q.From.IsZero() {
		add("occurred_at >= $%d", q.From)
	}
	if !q.To.IsZero() {
		add("occurred_at < $%d", q.To)
	}
	for _, in := range []struct {
		column string
		values []string
	}{{"event_type", q.EventTypes}, {"tenant_id", q.Tenants}, {"phase", q.Phases}, {"reason", q.Reasons}} {
		if len(in.values) > 0 {
			add(in.column+" = ANY($%d)", in.values)
		}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultQueryLimit
	}
	args = append(args, limit)
	rows, err := p.pool.Query(ctx, fmt.Sprintf(`SELECT namespace, delivery_name, subscription, event_id, event_type,
    coalesce(tenant_id, ''), coalesce(collection, ''), occurred_at, data, phase, coalesce(reason, ''), created_at
FROM %s WHERE %s ORDER BY occurred_at, delivery_name LIMIT $%d`, p.table, strings.Join(where, " AND "), len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("read pruned deliveries from %s: %w", p.table, err)
	}
	defer rows.Close()
	var out []ledger.Pruned
	for rows.Next() {
		var d ledger.Pruned
		if err := rows.Scan(&d.Namespace, &d.DeliveryName, &d.Subscription, &d.EventID, &d.EventType, &d.TenantID,
			&d.Collection, &d.OccurredAt, &d.Data, &d.Phase, &d.Reason, &d.Created); err != nil {
			return nil, fmt.Errorf("read pruned delivery: %w", err)
		}
		d.OccurredAt, d.Created = d.OccurredAt.UTC(), d.Created.UTC()
		if len(d.Data) == 0 {
			d.Data = nil
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pruned deliveries from %s: %w", p.table, err)
	}
	return out, nil
}

// purgePrunedSQL deletes a chunk of the pruned deliveries kept longer than the retention ($1 is the cutoff). They
// share the attempts' retention: a replay rebuilds a delivery from its event, and its attempts say why it failed.
func purgePrunedSQL(t pgschema.Table) string {
	return fmt.Sprintf(`DELETE FROM %[1]s WHERE ctid IN (
    SELECT ctid FROM %[1]s WHERE pruned_at < $1 LIMIT %[2]d)`, prunedTable(t.Schema, t.Name).Qualified(), purgeChunk)
}
