package ingest

import (
	"context"
	"testing"

	"golang.org/x/sync/errgroup"
)

// Work a dispatch hands to Later is usually still running when the batch's last dispatcher returns, which ends the
// dispatchers' context: the work must not be cut off with it, or the batch would be handed back and its
// successes sent again.
func TestLateWorkOutlivesTheDispatchersContext(t *testing.T) {
	late := newLateWork(context.Background(), &batchPlace{detach: func() {}}, 2)
	dispatchers, dctx := errgroup.WithContext(context.Background())
	dispatchers.Go(func() error {
		late.later(func(ctx context.Context) error {
			<-dctx.Done() // the dispatchers are all done
			return ctx.Err()
		})
		return nil
	})
	if err := dispatchers.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := late.wait(); err != nil {
		t.Errorf("late work after the dispatchers finished: %v, want it to run to the end", err)
	}
}

func TestLateWorkErrorIsTheBatchs(t *testing.T) {
	late := newLateWork(context.Background(), &batchPlace{detach: func() {}}, 1)
	late.later(func(context.Context) error { return context.DeadlineExceeded })
	if err := late.wait(); err == nil {
		t.Error("a failed late work: wait returned nil, want its error so the batch is handed back")
	}
}
