package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookpost/hookpost/internal/source"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

// outboxBatch is how many rows one producer transaction inserts.
const outboxBatch = 20

// outboxEventID is the event_id of outbox event seq, chosen by the producer rather than the database, so a
// transaction retried after its commit's answer was lost (PostgreSQL restarting) inserts nothing twice.
func outboxEventID(seed int64, seq int) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(seed))
	binary.LittleEndian.PutUint64(b[8:], uint64(seq))
	sum := sha256.Sum256(b[:])
	id, _ := uuid.FromBytes(sum[:16])
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id.String()
}

// natsEventID is the id of NATS event seq, its Nats-Msg-Id.
func natsEventID(seq int) string { return fmt.Sprintf("chaos-nats-%06d", seq) }

// produceOutbox inserts events outbox events, outboxBatch to a transaction, paced evenly over spread. A
// transaction that fails while PostgreSQL is down is retried until it commits.
func produceOutbox(ctx context.Context, pool *pgxpool.Pool, seed int64, events int, spread time.Duration, published *atomic.Int64) error {
	insert := fmt.Sprintf("INSERT INTO %s (event_id, event_type, tenant_id, collection, payload) VALUES ($1, $2, $3, $4, $5) "+
		"ON CONFLICT (event_id) DO NOTHING", postgres.DefaultTable)
	start := time.Now()
	for first := 0; first < events; first += outboxBatch {
		if !harness.SleepUntil(ctx, start.Add(spread*time.Duration(first)/time.Duration(events))) {
			return ctx.Err()
		}
		last := min(first+outboxBatch, events)
		err := harness.CommitRetrying(ctx, pool, 600, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			for seq := first; seq < last; seq++ {
				eventType, tenant := harness.MixedEvent(seq)
				b.Queue(insert, outboxEventID(seed, seq), eventType, tenant, "orders", json.RawMessage(fmt.Sprintf(`{"seq":%d}`, seq)))
			}
			return tx.SendBatch(ctx, b).Close()
		})
		if err != nil {
			return fmt.Errorf("insert outbox events %d-%d: %w", first, last-1, err)
		}
		published.Add(int64(last - first))
	}
	return nil
}

// produceNATS publishes events NATS events one by one, paced evenly over spread, each retried until the server
// acknowledges it.
func produceNATS(ctx context.Context, js jetstream.JetStream, events int, spread time.Duration, published *atomic.Int64) error {
	start := time.Now()
	for seq := range events {
		if !harness.SleepUntil(ctx, start.Add(spread*time.Duration(seq)/time.Duration(events))) {
			return ctx.Err()
		}
		eventType, tenant := harness.MixedEvent(seq)
		ev := source.Event{ID: natsEventID(seq), Type: eventType, TenantID: tenant, Collection: "orders",
			OccurredAt: time.Now(), Data: []byte(fmt.Sprintf(`{"seq":%d}`, seq))}
		if err := harness.PublishRetrying(ctx, js, ev); err != nil {
			return err
		}
		published.Add(1)
	}
	return nil
}
