package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookpost/hookpost/test/harness"
)

// produce publishes events 0..events-1 from producers goroutines and returns when all are published: as fast
// as the producers can when rate is 0, else event i no earlier than start + i/rate, so a run that cannot keep
// the pace shows it in its produce rate rather than in a burst.
func produce(ctx context.Context, events, producers int, rate float64, publish func(ctx context.Context, seq int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < events && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				if rate > 0 && !harness.SleepUntil(ctx, start.Add(time.Duration(float64(i)/rate*float64(time.Second)))) {
					return
				}
				if err := publish(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}
