package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/internal/source/postgres"
)

// ledgerCounts is how many of a run's events have no, exactly one, or more than one success row in the delivery
// ledger. With one subscription, every event should have exactly one.
type ledgerCounts struct {
	events, none, once, more int
	// rows is every row of the run's ledger table, whatever its outcome: none at all means the operator wrote
	// no ledger, rather than lost some rows.
	rows int
}

// countLedgerSuccesses joins every event of the run's outbox with the ledger's success rows for namespace. The
// operator has stopped by then, so its ledger writer has flushed.
func countLedgerSuccesses(ctx context.Context, pool *pgxpool.Pool, namespace string) (*ledgerCounts, error) {
	outbox := pgx.Identifier{postgres.DefaultSchema, postgres.DefaultTable}.Sanitize()
	ledgerTable := pgx.Identifier{ledgerpg.DefaultSchema, ledgerpg.DefaultTable}.Sanitize()
	query := fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE successes = 0), count(*) FILTER (WHERE successes = 1),
       count(*) FILTER (WHERE successes > 1)
FROM (
    SELECT o.event_id, count(l.id) AS successes
    FROM %s o LEFT JOIN %s l ON l.event_id = o.event_id::text AND l.outcome = $1 AND l.namespace = $2
    GROUP BY o.event_id
) per_event`, outbox, ledgerTable)
	var c ledgerCounts
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+ledgerTable).Scan(&c.rows); err != nil {
		return nil, fmt.Errorf("count the ledger's rows: %w", err)
	}
	if err := pool.QueryRow(ctx, query, string(ledger.OutcomeSucceeded), namespace).Scan(&c.events, &c.none, &c.once, &c.more); err != nil {
		return nil, fmt.Errorf("count success rows in the ledger: %w", err)
	}
	return &c, nil
}
