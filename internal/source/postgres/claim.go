package postgres

// How claiming works.
//
// A claim is one short statement that commits at once. It picks up to max pending rows whose claimed_until is
// NULL or past, in id order, and sets their claimed_until to the database's now() plus the lease
// (Options.ClaimLease). FOR UPDATE SKIP LOCKED only keeps two claim statements running at the same instant from
// picking the same rows; the row locks end with the statement. No transaction stays open while the caller works
// on the batch, so a batch whose deliveries take a minute holds no row lock and no connection.
//
// While the batch is open its heartbeat (batch.go) moves claimed_until forward every lease/3, so no other
// replica claims its rows however long the work takes. A replica that crashes stops its heartbeat, and its rows
// become claimable once the lease runs out. Every time is the database's now(), never a replica's clock, so
// replicas whose clocks disagree still agree on when a lease ends.
//
// The claimed_until value a claim or heartbeat wrote is the batch's token: extending the lease, Nack and giving
// rows back at Close all match it, so a replica that lost its lease (its heartbeat failed for longer than the
// lease, say, and another replica claimed the rows meanwhile) never extends or releases the other replica's
// claim. A later claim always writes a later value, so tokens do not repeat.
//
// Ack does not match the token: the caller acks only once every event is delivered or has a durable
// WebhookDelivery, so marking the rows done is right whoever holds them now. The price of leases is that an
// event can be handed over twice, to the replica that lost the lease and to the one that took the rows over:
// delivery is at least once, never lost. Both replicas derive the same WebhookDelivery name from the
// subscription and event id (api/v1alpha1/names.go), so the second gets AlreadyExists rather than a second
// delivery; an attempt made before any WebhookDelivery exists carries the same event id either time (the
// X-Event-Id header, internal/delivery/attempt.go), so a receiver can drop the repeat.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookpost/hookpost/internal/source"
)

// claimedRow is a row as the claim statement returns it. Every column is read into a type that holds any value
// the table can: a value that would fail to scan would fail the whole claim, again on every poll, and stop the
// rows behind it; read this way it reaches decodeRow, which sets the row aside with the reason.
type claimedRow struct {
	id    int64
	event source.Event // without Type and Data, which are eventType and payload once the row is accepted
	// eventType is nil when event_type is NULL: the DDL forbids it, but a table altered by hand may not.
	eventType *string
	// occurredAtInfinite: occurred_at is 'infinity' or '-infinity', which no time type can hold (the claim reads
	// it as NULL, so the row can be set aside instead of failing every claim).
	occurredAtInfinite bool
	// payloadSize is the payload's length as JSON text; payload is nil when that is over the limit, so an
	// oversize payload is never read.
	payloadSize int
	payload     *string
}

// leasedEvent is a deliverable row of a batch.
type leasedEvent struct {
	id    int64
	event source.Event
}

// rejectedRow is a malformed row to set aside.
type rejectedRow struct {
	id        int64
	rejection source.Rejection
}

// claim leases up to max pending rows and returns the deliverable ones as an open batch, or nil when nothing
// is pending. Malformed rows are set aside first, in their own statement, so they are reported once and never
// ride on a batch that might be given back; setAside reports that a claim found only malformed rows.
func (s *Source) claim(ctx context.Context, max int) (b *batch, setAside bool, err error) {
	rows, lease, err := s.leaseRows(ctx, max)
	if err != nil || len(rows) == 0 {
		return nil, false, err
	}
	accepted, rejected := sortOut(rows, s.opts.MaxPayloadBytes)
	if err := s.reject(ctx, rejected); err != nil {
		// The malformed rows come back when their lease runs out; the good ones need not wait that long.
		s.giveBack(ctx, idsOf(accepted), lease)
		return nil, false, err
	}
	if len(accepted) == 0 {
		return nil, true, nil
	}
	b, err = s.openBatch(ctx, accepted, lease)
	return b, false, err
}

// sortOut splits claimed rows into deliverable events and malformed rows, each in the order given.
func sortOut(rows []claimedRow, maxPayloadBytes int) (accepted []leasedEvent, rejected []rejectedRow) {
	for _, r := range rows {
		ev, reason := decodeRow(r, maxPayloadBytes)
		if reason != "" {
			rejected = append(rejected, rejectedRow{id: r.id, rejection: source.Rejection{Source: Name, ID: ev.ID, Reason: reason}})
			continue
		}
		ev.Source, ev.Position = Name, uint64(r.id) // bigserial: from 1 up
		accepted = append(accepted, leasedEvent{id: r.id, event: ev})
	}
	return accepted, rejected
}

// decodeRow turns the values the claim read from one row into an event, or says why the row cannot be
// delivered, naming the column to fix. It is a pure function of the values (FuzzDecodeRow feeds it arbitrary
// ones): an event it returns passes source.ValidateEvent, and a row it refuses has a non-empty reason. The
// event's ID is set either way, for the rejection.
func decodeRow(r claimedRow, maxPayloadBytes int) (ev source.Event, reason string) {
	ev = r.event
	if r.eventType == nil {
		return ev, "event_type: is NULL: set it to a name such as \"order.created\""
	}
	ev.Type = *r.eventType
	if reason := source.ValidateType(ev.Type); reason != "" {
		return ev, "event_type: " + reason
	}
	if reason := source.ValidateAttributes(ev); reason != "" {
		return ev, "tenant_id/collection: " + reason
	}
	if r.occurredAtInfinite {
		return ev, "occurred_at: infinity is not a point in time: set a finite timestamp, or leave it out for now()"
	}
	if r.payload == nil {
		return ev, "payload: " + source.OversizeReason(r.payloadSize, maxPayloadBytes)
	}
	if reason := source.ValidateData([]byte(*r.payload), maxPayloadBytes); reason != "" {
		return ev, "payload: " + reason
	}
	ev.Data = []byte(*r.payload)
	return ev, ""
}

// leaseRows runs the claim statement and returns the rows in id order with the lease they got, the same for all.
func (s *Source) leaseRows(ctx context.Context, max int) ([]claimedRow, time.Time, error) {
	rows, err := s.pool.Query(ctx, s.sql.claim, max, s.opts.MaxPayloadBytes, s.opts.ClaimLease.Seconds())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("claim pending rows from %s: %w", s.table.Qualified(), err)
	}
	defer rows.Close()
	var (
		claimed []claimedRow
		lease   time.Time
	)
	for rows.Next() {
		r, err := scanRow(rows, &lease)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("read pending row: %w", err)
		}
		claimed = append(claimed, r)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("claim pending rows from %s: %w", s.table.Qualified(), err)
	}
	return claimed, lease, nil
}

// scanRow reads a row of the claim's or the re-read's columns, the last of which (the lease, the processing time)
// goes to last.
func scanRow(rows pgx.Rows, last *time.Time) (claimedRow, error) {
	var (
		r          claimedRow
		occurredAt *time.Time
	)
	if err := rows.Scan(&r.id, &r.event.ID, &r.eventType, &r.event.TenantID, &r.event.Collection,
		&occurredAt, &r.payloadSize, &r.payload, last); err != nil {
		return claimedRow{}, err
	}
	if occurredAt == nil {
		r.occurredAtInfinite = true // NOT NULL in the table: NULL here is the query's reading of infinity
	} else {
		r.event.OccurredAt = *occurredAt
	}
	return r, nil
}

// reject marks malformed rows rejected, all or none, then reports them.
func (s *Source) reject(ctx context.Context, rejected []rejectedRow) error {
	if len(rejected) == 0 {
		return nil
	}
	now := s.opts.Now()
	var q pgx.Batch // one round trip, run as one implicit transaction
	for _, r := range rejected {
		q.Queue(s.sql.reject, r.id, r.rejection.Reason, now)
	}
	if err := s.pool.SendBatch(ctx, &q).Close(); err != nil {
		return fmt.Errorf("set aside %d malformed outbox rows: %w", len(rejected), err)
	}
	if s.opts.OnReject != nil {
		for _, r := range rejected {
			s.opts.OnReject(r.rejection)
		}
	}
	return nil
}

// openBatch registers a batch and starts its heartbeat, unless the source was closed meanwhile.
func (s *Source) openBatch(ctx context.Context, rows []leasedEvent, lease time.Time) (*batch, error) {
	b := newBatch(s, rows, lease)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.giveBack(ctx, b.ids(), lease)
		return nil, errClosed
	}
	s.open[b] = struct{}{}
	s.heartbeats.Go(func() { b.keepLease(s.life, heartbeatInterval(s.opts.ClaimLease)) })
	s.mu.Unlock()
	return b, nil
}

// giveBack makes rows still holding lease claimable at once. It is best effort: rows it misses come back when
// their lease runs out.
func (s *Source) giveBack(ctx context.Context, ids []int64, lease time.Time) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
	defer cancel()
	_, _ = s.pool.Exec(ctx, s.sql.release, ids, lease)
}

// heartbeatInterval is how often an open batch's lease is extended: three chances before it runs out.
func heartbeatInterval(lease time.Duration) time.Duration {
	return max(lease/3, time.Millisecond)
}

func idsOf(rows []leasedEvent) []int64 {
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	return ids
}
