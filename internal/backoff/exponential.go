package backoff

import (
	"context"
	"time"
)

// Exponential returns the wait before the next try of a loop that has failed failures times in a row (1-based):
// first after one failure, doubling with each further failure, never more than limit. The sources and the
// ledger writer use it between reconnection or write attempts; a failures below 1 is treated as 1.
func Exponential(failures int, first, limit time.Duration) time.Duration {
	if first >= limit {
		return max(limit, 0)
	}
	if first <= 0 {
		return 0
	}
	d := first
	for i := 1; i < failures; i++ {
		if d > limit/2 {
			return limit // doubling again would pass the limit, or overflow
		}
		d *= 2
	}
	return min(d, limit)
}

// Sleep waits d, or until ctx ends, and then returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
