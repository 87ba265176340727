package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/pgschema"
)

// ParkingSuffix is appended to the ledger table's name to name the table of parked deliveries
// (webhook_deliveries_parked by default).
const ParkingSuffix = "_parked"

// ParkingDDL returns the idempotent statements that create the table of parked deliveries next to the ledger
// table ledgerTable (default "webhook_deliveries") in schema. seq is the order of arrival; the unique key makes
// parking an event handed over twice a no-op; the index serves the drain, which reads a subscription's oldest.
// data is bytea, like the ledger's response, so the event's JSON comes back byte for byte. reason and
// first_attempt came later: a table made before them gets them added, its rows counting as parked past a cap.
func ParkingDDL(schema, ledgerTable string) string {
	t := parkingTable(schema, ledgerTable)
	var b strings.Builder
	b.WriteString(t.CreateSchema())
	fmt.Fprintf(&b, `CREATE TABLE IF NOT EXISTS %[1]s (
    seq              bigserial   PRIMARY KEY,
    parked_at        timestamptz NOT NULL DEFAULT now(),
    namespace        text        NOT NULL,
    subscription     text        NOT NULL,
    subscription_uid text        NOT NULL,
    event_id         text        NOT NULL,
    event_type       text        NOT NULL,
    tenant_id        text,
    collection       text,
    occurred_at      timestamptz NOT NULL,
    data             bytea,
    UNIQUE (namespace, subscription, subscription_uid, event_id)
);
ALTER TABLE %[1]s ADD COLUMN IF NOT EXISTS reason text NOT NULL DEFAULT 'cap';
ALTER TABLE %[1]s ADD COLUMN IF NOT EXISTS first_attempt text;

-- A subscription's parked deliveries in order of arrival (the drain).
DO $hookpost$ BEGIN
    IF to_regclass(%[3]s) IS NULL THEN
        CREATE INDEX %[2]s ON %[1]s (namespace, subscription, subscription_uid, seq);
    END IF;
END $hookpost$;
`, t.Qualified(), t.Sibling("_order_idx"), pgschema.QuoteLiteral(t.QualifiedSibling("_order_idx")))
	return b.String()
}

func parkingTable(schema, ledgerTable string) pgschema.Table {
	return besideLedger(schema, ledgerTable, ParkingSuffix)
}

// besideLedger is the table named the ledger table's name plus suffix, in the ledger's schema.
func besideLedger(schema, ledgerTable, suffix string) pgschema.Table {
	l := pgschema.NewTable(schema, ledgerTable, DefaultTable)
	return pgschema.Table{Schema: l.Schema, Name: l.Name + suffix}
}

// Parking is the table of parked deliveries, in the ledger's database.
type Parking struct {
	pool  *pgxpool.Pool
	table string // quoted

	// Parks made while an INSERT is under way wait in queue and go in the next one, together: a failing
	// endpoint's matches are parked at the event rate times its subscriptions, and a round trip and a commit
	// each would hold up the batches they belong to.
	mu       sync.Mutex
	queue    []parkRequest
	flushing bool
}

type parkRequest struct {
	row  ledger.Parked
	done chan error
}

// parkTimeout bounds one INSERT of parked deliveries. It is not any one caller's context: the rows of every
// caller waiting in the queue go in it.
const parkTimeout = 15 * time.Second

var _ ledger.Parking = (*Parking)(nil)

// Parking returns the table of parked deliveries next to the writer's ledger table, on the writer's connections.
func (w *Writer) Parking() *Parking {
	return &Parking{pool: w.pool, table: parkingTable(w.table.Schema, w.table.Name).Qualified()}
}

// Park stores d; an event already parked for the subscription is left as it is. Parks from concurrent callers
// are written together, in the order they were called (their order of arrival). When ctx ends first Park returns
// its error, and d may be parked all the same.
func (p *Parking) Park(ctx context.Context, d ledger.Parked) error {
	r := parkRequest{row: d, done: make(chan error, 1)}
	p.mu.Lock()
	p.queue = append(p.queue, r)
	flush := !p.flushing
	p.flushing = true
	p.mu.Unlock()
	if flush {
		// Nobody is writing: one writer starts, and writes until the queue is empty.
		go p.flush()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes the queued parks, an INSERT per queueful, until none is left.
func (p *Parking) flush() {
	for {
		p.mu.Lock()
		batch := p.queue
		p.queue = nil
		if len(batch) == 0 {
			p.flushing = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		err := p.insert(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// insert writes batch in one statement; unnest keeps the order of the arrays, so seq follows the queue.
func (p *Parking) insert(batch []parkRequest) error {
	n := len(batch)
	ns, subs, uids, ids, types := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	tenants, collections, firsts := make([]*string, n), make([]*string, n), make([]*string, n)
	occurred, data, reasons := make([]time.Time, n), make([][]byte, n), make([]string, n)
	for i, r := range batch {
		d := r.row
		ns[i], subs[i], uids[i], ids[i], types[i] = d.Subscription.Namespace, d.Subscription.Name, d.Subscription.UID, d.EventID, d.EventType
		tenants[i], collections[i], firsts[i] = nullIfEmpty(d.TenantID), nullIfEmpty(d.Collection), nullIfEmpty(d.FirstAttempt)
		occurred[i], data[i], reasons[i] = d.OccurredAt, d.Data, string(d.Reason)
		if reasons[i] == "" {
			reasons[i] = string(ledger.ParkedPastCap)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), parkTimeout)
	defer cancel()
	_, err := p.pool.Exec(ctx, `INSERT INTO `+p.table+` (namespace, subscription, subscription_uid, event_id, event_type,
    tenant_id, collection, occurred_at, data, reason, first_attempt)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::bytea[],
    $10::text[], $11::text[])
ON CONFLICT DO NOTHING`, ns, subs, uids, ids, types, tenants, collections, occurred, data, reasons, firsts)
	if err != nil {
		if n == 1 {
			return fmt.Errorf("park delivery of event %s: %w", batch[0].row.EventID, err)
		}
		return fmt.Errorf("park deliveries of %d events: %w", n, err)
	}
	return nil
}

// Oldest returns up to limit of sub's parked deliveries, in order of arrival.
func (p *Parking) Oldest(ctx context.Context, sub ledger.SubscriptionKey, limit int) ([]ledger.Parked, error) {
	rows, err := p.pool.Query(ctx, `SELECT seq, reason, event_id, event_type, coalesce(tenant_id, ''), coalesce(collection, ''), occurred_at, data,
    coalesce(first_attempt, '')
FROM `+p.table+` WHERE namespace = $1 AND subscription = $2 AND subscription_uid = $3 ORDER BY seq LIMIT $4`,
		sub.Namespace, sub.Name, sub.UID, limit)
	if err != nil {
		return nil, fmt.Errorf("read parked deliveries: %w", err)
	}
	defer rows.Close()
	var out []ledger.Parked
	for rows.Next() {
		d := ledger.Parked{Subscription: sub}
		if err := rows.Scan(&d.Seq, &d.Reason, &d.EventID, &d.EventType, &d.TenantID, &d.Collection, &d.OccurredAt, &d.Data, &d.FirstAttempt); err != nil {
			return nil, fmt.Errorf("read parked delivery: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read parked deliveries: %w", err)
	}
	return out, nil
}

// Remove deletes parked deliveries by seq, in one statement.
func (p *Parking) Remove(ctx context.Context, seqs ...int64) error {
	if len(seqs) == 0 {
		return nil
	}
	if _, err := p.pool.Exec(ctx, `DELETE FROM `+p.table+` WHERE seq = ANY($1)`, seqs); err != nil {
		return fmt.Errorf("remove %d parked deliveries: %w", len(seqs), err)
	}
	return nil
}

// RemoveSubscription deletes every delivery parked for sub.
func (p *Parking) RemoveSubscription(ctx context.Context, sub ledger.SubscriptionKey) (int64, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM `+p.table+` WHERE namespace = $1 AND subscription = $2 AND subscription_uid = $3`,
		sub.Namespace, sub.Name, sub.UID)
	if err != nil {
		return 0, fmt.Errorf("remove parked deliveries of %s/%s: %w", sub.Namespace, sub.Name, err)
	}
	return tag.RowsAffected(), nil
}

// Counts returns the parked deliveries per subscription.
func (p *Parking) Counts(ctx context.Context) (map[ledger.SubscriptionKey]ledger.ParkedCount, error) {
	rows, err := p.pool.Query(ctx, `SELECT namespace, subscription, subscription_uid, count(*), count(*) FILTER (WHERE reason = $1)
FROM `+p.table+` GROUP BY 1, 2, 3`, string(ledger.ParkedPastCap))
	if err != nil {
		return nil, fmt.Errorf("count parked deliveries: %w", err)
	}
	defer rows.Close()
	out := map[ledger.SubscriptionKey]ledger.ParkedCount{}
	for rows.Next() {
		var k ledger.SubscriptionKey
		var n ledger.ParkedCount
		if err := rows.Scan(&k.Namespace, &k.Name, &k.UID, &n.All, &n.PastCap); err != nil {
			return nil, fmt.Errorf("count parked deliveries: %w", err)
		}
		out[k] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count parked deliveries: %w", err)
	}
	return out, nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
