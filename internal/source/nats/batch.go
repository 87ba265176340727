package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookpost/hookpost/internal/source"
)

// errSettled is returned when a batch is acked or nacked a second time.
var errSettled = errors.New("nats batch already settled")

type batch struct {
	events []source.Event
	msgs   []jetstream.Msg

	mu      sync.Mutex
	settled bool
	stop    chan struct{} // closed when settled; stops the progress ticker
}

// newBatch returns a batch whose messages are kept from redelivery while it is being worked on: a batch fanned
// out to many subscriptions can take longer than AckWait, and a redelivered copy would only double the work.
func newBatch(events []source.Event, msgs []jetstream.Msg, ackWait time.Duration, closed <-chan struct{}) *batch {
	b := &batch{events: events, msgs: msgs, stop: make(chan struct{})}
	go b.keepInProgress(ackWait/3, closed)
	return b
}

func (b *batch) keepInProgress(every time.Duration, closed <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-closed:
			return
		case <-t.C:
			for _, m := range b.msgs {
				_ = m.InProgress() // best effort: a lost one means at worst a redelivery, which ingest absorbs
			}
		}
	}
}

func (b *batch) Events() []source.Event { return b.events }

// Ack acknowledges every message and waits for the server to confirm each, so a returned nil means no
// redelivery. Messages whose ack failed are redelivered after AckWait.
func (b *batch) Ack(ctx context.Context) error {
	if err := b.settle(); err != nil {
		return err
	}
	for i, m := range b.msgs {
		if err := m.DoubleAck(ctx); err != nil {
			return fmt.Errorf("ack event %s (%d of %d): %w", b.events[i].ID, i+1, len(b.msgs), err)
		}
	}
	return nil
}

// Nack asks the server to redeliver every message after delay. The cause is not sent: NATS has no place for it.
func (b *batch) Nack(_ context.Context, delay time.Duration, _ error) error {
	if err := b.settle(); err != nil {
		return err
	}
	var errs []error
	for i, m := range b.msgs {
		if err := m.NakWithDelay(delay); err != nil {
			errs = append(errs, fmt.Errorf("nak event %s: %w", b.events[i].ID, err))
		}
	}
	return errors.Join(errs...)
}

func (b *batch) settle() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.settled {
		return errSettled
	}
	b.settled = true
	close(b.stop)
	return nil
}
