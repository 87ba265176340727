package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookpost/hookpost/internal/source"
)

// errSettled is returned when a batch is acked or nacked a second time.
var errSettled = errors.New("outbox batch already settled")

// batch holds the claiming transaction open: the row locks are the claim.
type batch struct {
	src    *Source
	tx     pgx.Tx
	ids    []int64
	events []source.Event

	mu      sync.Mutex
	settled bool
}

func (b *batch) Events() []source.Event { return b.events }

// Ack marks the rows done and commits. If the commit fails the rows stay pending and are claimed again.
func (b *batch) Ack(ctx context.Context) error {
	return b.settle(ctx, func(ctx context.Context) error {
		if _, err := b.tx.Exec(ctx, b.src.sql.ack, b.ids, b.src.opts.Now()); err != nil {
			_ = b.tx.Rollback(context.WithoutCancel(ctx))
			return fmt.Errorf("mark %d outbox rows done: %w", len(b.ids), err)
		}
		if err := b.tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit %d done outbox rows: %w", len(b.ids), err)
		}
		return nil
	})
}

// Nack rolls back, releasing the rows, and holds back this source's claims for delay. Another replica may claim
// the rows sooner. The cause is not stored: the rows simply stay pending.
func (b *batch) Nack(ctx context.Context, delay time.Duration, cause error) error {
	return b.settle(ctx, func(ctx context.Context) error {
		b.src.pauseFor(delay)
		if err := b.tx.Rollback(ctx); err != nil {
			return fmt.Errorf("give back %d outbox rows: %w", len(b.ids), err)
		}
		return nil
	})
}

func (b *batch) settle(ctx context.Context, finish func(context.Context) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.settled {
		return errSettled
	}
	b.settled = true
	b.src.mu.Lock()
	delete(b.src.open, b)
	b.src.mu.Unlock()
	return finish(ctx)
}
