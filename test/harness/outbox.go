package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookpost/hookpost/internal/source/postgres"
)

// CommitRetrying runs fn in a synchronously committed transaction, retrying up to attempts times, half a second
// apart, while PostgreSQL is just back from a restart and the pool still hands out dead connections. The cluster
// runs with synchronous_commit=off, and a program that restarts PostgreSQL must not lose rows it counts on. A
// failed attempt committed nothing as far as the caller can tell; fn must tolerate a commit that landed although
// its answer was lost (insert with ON CONFLICT DO NOTHING, or count what the table holds afterwards).
func CommitRetrying(ctx context.Context, pool *pgxpool.Pool, attempts int, fn func(pgx.Tx) error) error {
	var err error
	for range max(attempts, 1) {
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
				return err
			}
			return fn(tx)
		})
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("commit after %d attempts: %w", attempts, err)
}

// OutboxStatusCounts counts the rows of the default outbox table by status (pending, done, rejected).
func OutboxStatusCounts(ctx context.Context, pool *pgxpool.Pool) (map[string]int, error) {
	rows, err := pool.Query(ctx, "SELECT status, count(*) FROM "+postgres.DefaultTable+" GROUP BY status")
	if err != nil {
		return nil, fmt.Errorf("count outbox rows: %w", err)
	}
	counts := map[string]int{}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count outbox rows: %w", err)
		}
		counts[status] = n
	}
	return counts, rows.Err()
}
