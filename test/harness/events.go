package harness

import (
	"context"
	"time"

	"github.com/hookpost/hookpost/internal/backoff"
)

// MixedEvent returns the type and tenant of the i-th generated event: three types, two of them order.*, and two
// tenants, so "order.*" and "* for tenant 1" overlap on some events and each misses others.
func MixedEvent(i int) (eventType, tenant string) {
	types := [...]string{"order.created", "user.registered", "order.completed"}
	return types[i%len(types)], []string{"1", "2"}[i%2]
}

// SleepUntil waits until t; false when ctx ended first. Producers pace themselves with it.
func SleepUntil(ctx context.Context, t time.Time) bool {
	return backoff.Sleep(ctx, time.Until(t)) == nil
}
