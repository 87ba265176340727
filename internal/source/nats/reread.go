package nats

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookpost/hookpost/internal/source"
)

const (
	// rereadBatch is how many messages one fetch of Reread asks for.
	rereadBatch = 256
	// rereadWait bounds a fetch that finds no message: the stream holds nothing more after since.
	rereadWait = time.Second
)

var _ source.Rereader = (*Source)(nil)

// Reread calls fn with each event the stream stored at or after since and before until, in stream order, until fn
// returns false. It reads through an ordered consumer of its own (ephemeral, without acks), so the durable
// consumer that ingest shares is not touched; the stream's retention bounds how far back it reaches. Messages
// decodeMessage refuses (the durable consumer terminated them as poison) are skipped.
func (s *Source) Reread(ctx context.Context, since, until time.Time, fn func(source.Event) bool) error {
	js, err := jetstream.New(s.conn)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	stream, err := js.Stream(ctx, s.opts.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.opts.Stream, err)
	}
	start := since
	consumer, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.opts.SubjectPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	})
	if err != nil {
		return fmt.Errorf("re-read stream %s from %s: %w", s.opts.Stream, since.UTC().Format(time.RFC3339), err)
	}
	for {
		batch, err := consumer.Fetch(rereadBatch, jetstream.FetchMaxWait(rereadWait))
		if err != nil {
			return fmt.Errorf("re-read stream %s: %w", s.opts.Stream, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			if !meta.Timestamp.Before(until) {
				return nil
			}
			ev, reason := s.toEvent(m)
			if reason == "" && !fn(ev) {
				return nil
			}
			if meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("re-read stream %s: %w", s.opts.Stream, err)
		}
		if got == 0 || ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
