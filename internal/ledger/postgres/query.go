package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hookpost/hookpost/internal/ledger"
)

// DefaultQueryLimit is how many attempts Query returns when Filter.Limit is not positive.
const DefaultQueryLimit = 100

// Filter selects attempts for Query. Zero fields select everything.
type Filter struct {
	// Namespace is the subscription's namespace.
	Namespace string
	// Subscription is the subscription's name (within Namespace, or in any namespace when Namespace is empty).
	Subscription string
	// EventID selects the attempts of one event, for every subscription it matched.
	EventID string
	// Outcome selects attempts by what the delivery became after them: succeeded, retrying, failed or refused.
	Outcome ledger.Outcome
	// Since selects attempts that started at or after it.
	Since time.Time
	// Limit is how many of the latest matching attempts are returned; DefaultQueryLimit when not positive.
	Limit int
}

// Query returns the latest f.Limit attempts that pass f, ordered by time, then id (the order they were
// written in). Times are in UTC, at PostgreSQL's microsecond precision; absent values come back as the zero
// value, a response that was empty as nil.
func (w *Writer) Query(ctx context.Context, f Filter) ([]ledger.Attempt, error) {
	if f.Outcome != "" && !validOutcome(f.Outcome) {
		return nil, fmt.Errorf("outcome %q is not an outcome: use --outcome succeeded, retrying, failed or refused", f.Outcome)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultQueryLimit
	}
	// Only the conditions given go into the statement, so each shape gets a plan that uses its index.
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Namespace != "" {
		add("namespace = $%d", f.Namespace)
	}
	if f.Subscription != "" {
		add("subscription = $%d", f.Subscription)
	}
	if f.EventID != "" {
		add("event_id = $%d", f.EventID)
	}
	if f.Outcome != "" {
		add("outcome = $%d", string(f.Outcome))
	}
	if !f.Since.IsZero() {
		add("attempted_at >= $%d", f.Since)
	}
	cond := ""
	if len(where) > 0 {
		cond = "WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	sql := fmt.Sprintf(`SELECT * FROM (
    SELECT id, attempted_at, namespace, subscription, delivery_name, event_id, event_type,
           coalesce(tenant_id, ''), coalesce(collection, ''), attempt, duration, coalesce(status_code, 0),
           coalesce(error_class, ''), coalesce(error, ''), response, next_retry_at, outcome, test, replay
    FROM %s %s ORDER BY attempted_at DESC, id DESC LIMIT $%d
) latest ORDER BY attempted_at, id`, w.table.Qualified(), cond, len(args))

	rows, err := w.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, w.explain("query", err)
	}
	defer rows.Close()
	var out []ledger.Attempt
	for rows.Next() {
		var (
			id        int64
			a         ledger.Attempt
			number    int32
			status    int32
			nextRetry *time.Time
			outcome   string
		)
		if err := rows.Scan(&id, &a.Time, &a.Namespace, &a.Subscription, &a.DeliveryName, &a.EventID, &a.EventType,
			&a.TenantID, &a.Collection, &number, &a.Duration, &status, &a.ErrorClass, &a.Error, &a.Response,
			&nextRetry, &outcome, &a.Test, &a.Replay); err != nil {
			return nil, fmt.Errorf("read ledger row: %w", err)
		}
		a.Time = a.Time.UTC()
		a.Number, a.StatusCode, a.Outcome = int(number), int(status), ledger.Outcome(outcome)
		if nextRetry != nil {
			a.NextRetry = nextRetry.UTC()
		}
		if len(a.Response) == 0 {
			a.Response = nil
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, w.explain("query", err)
	}
	return out, nil
}
