package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hookpost/hookpost/internal/source"
)

// errSettled is returned when a batch is acked or nacked a second time.
var errSettled = errors.New("outbox batch already settled")

// batch is a set of leased rows. It holds no transaction and no connection: the lease in claimed_until is the
// claim, kept alive by the batch's heartbeat until it is settled (see claim.go).
type batch struct {
	src    *Source
	rows   []leasedEvent
	events []source.Event // the rows' events, as Events returns them

	// lease is the claimed_until this batch last wrote, the token its statements match. Only the heartbeat
	// changes it while the batch is open; settle reads it once the heartbeat has stopped.
	lease         time.Time
	stopHeartbeat chan struct{}
	heartbeatDone chan struct{}

	mu      sync.Mutex
	settled bool
}

func newBatch(src *Source, rows []leasedEvent, lease time.Time) *batch {
	events := make([]source.Event, len(rows))
	for i, r := range rows {
		events[i] = r.event
	}
	return &batch{
		src:           src,
		rows:          rows,
		events:        events,
		lease:         lease,
		stopHeartbeat: make(chan struct{}),
		heartbeatDone: make(chan struct{}),
	}
}

func (b *batch) Events() []source.Event { return b.events }

func (b *batch) ids() []int64 { return idsOf(b.rows) }

// Ack marks the rows done in one statement. It does not match the lease: the caller acks only once every event
// is delivered or has a durable WebhookDelivery, so the rows are done even if the lease ran out and another
// replica took them meanwhile (whose own Ack then finds nothing pending). If the statement fails the rows stay
// pending and come back when the lease runs out.
func (b *batch) Ack(ctx context.Context) error {
	return b.settle(ctx, func(ctx context.Context) error {
		if _, err := b.src.pool.Exec(ctx, b.src.sql.ack, b.ids(), b.src.opts.Now()); err != nil {
			return fmt.Errorf("mark %d outbox rows done: %w", len(b.rows), err)
		}
		return nil
	})
}

// Nack leases the rows for delay instead, so they come back after delay, to whichever replica claims first.
// It also holds back this source's claims for delay: the caller nacks for trouble downstream, which the next
// batch would run into as well. Rows whose lease was lost are left to the replica that took them. The cause is
// not stored: the rows simply stay pending.
func (b *batch) Nack(ctx context.Context, delay time.Duration, cause error) error {
	return b.settle(ctx, func(ctx context.Context) error {
		b.src.pauseFor(delay)
		if _, err := b.src.pool.Exec(ctx, b.src.sql.nack, b.ids(), b.lease, max(delay, 0).Seconds()); err != nil {
			return fmt.Errorf("give back %d outbox rows for %s: %w", len(b.rows), delay, err)
		}
		return nil
	})
}

// giveBack makes the rows claimable at once; Close uses it.
func (b *batch) giveBack(ctx context.Context) error {
	b.src.giveBack(ctx, b.ids(), b.lease)
	return nil
}

// settle stops the heartbeat, so finish sees the final lease, and runs finish once.
func (b *batch) settle(ctx context.Context, finish func(context.Context) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.settled {
		return errSettled
	}
	b.settled = true
	close(b.stopHeartbeat)
	<-b.heartbeatDone
	b.src.mu.Lock()
	delete(b.src.open, b)
	b.src.mu.Unlock()
	return finish(ctx)
}

// keepLease extends the lease every interval until the batch is settled or the source stops. A failed
// extension is tried again at the next tick: the lease has three ticks to run. Once no row carries the batch's
// token any more (another replica claimed them after the lease ran out), there is nothing left to extend.
func (b *batch) keepLease(life context.Context, every time.Duration) {
	defer close(b.heartbeatDone)
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-b.stopHeartbeat:
			return
		case <-life.Done():
			return
		case <-ticker.C:
			if !b.extendLease(life, every) {
				return
			}
		}
	}
}

// extendLease moves the lease of the rows still carrying the batch's token. It reports false once none does.
func (b *batch) extendLease(life context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(life, timeout)
	defer cancel()
	var (
		held  int
		lease *time.Time // NULL when no row was extended
	)
	err := b.src.pool.QueryRow(ctx, b.src.sql.extend, b.ids(), b.lease, b.src.opts.ClaimLease.Seconds()).Scan(&held, &lease)
	if err != nil {
		// The lease may well still be ours: try again at the next tick. Should the failed statement have
		// committed after all, the rows carry a token this batch never learnt, the next try matches none and
		// the lease runs out early: another replica may then take the rows too, which at least once allows.
		return true
	}
	if held == 0 || lease == nil {
		return false
	}
	b.lease = *lease
	return true
}
