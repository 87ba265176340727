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
	return nil
}
