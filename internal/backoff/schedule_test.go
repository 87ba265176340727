package backoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/backoff"
)

func TestNext(t *testing.T) {
	now := time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC)
	sched := backoff.DefaultSchedule

	tests := []struct {
		name          string
		attempt       int
		retryAfter    time.Duration
		maxRetryAfter time.Duration
		wantDelay     time.Duration
		wantOK        bool
	}{
		{name: "nothing attempted yet is due now", attempt: 0, wantDelay: 0, wantOK: true},
		{name: "first failure waits 1m", attempt: 1, wantDelay: time.Minute, wantOK: true},
		{name: "second failure waits 5m", attempt: 2, wantDelay: 5 * time.Minute, wantOK: true},
		{name: "third failure waits 15m", attempt: 3, wantDelay: 15 * time.Minute, wantOK: true},
		{name: "fourth failure waits 1h", attempt: 4, wantDelay: time.Hour, wantOK: true},
		{name: "fifth failure waits 6h", attempt: 5, wantDelay: 6 * time.Hour, wantOK: true},
		{name: "sixth failure has no next attempt", attempt: 6, wantOK: false},
		{name: "far past the schedule has no next attempt", attempt: 100, wantOK: false},
		{name: "longer retry-after replaces the delay", attempt: 1, retryAfter: 2 * time.Minute, maxRetryAfter: time.Hour, wantDelay: 2 * time.Minute, wantOK: true},
		{name: "shorter retry-after does not speed retries up", attempt: 2, retryAfter: 30 * time.Second, maxRetryAfter: time.Hour, wantDelay: 5 * time.Minute, wantOK: true},
		{name: "retry-after is capped", attempt: 1, retryAfter: 48 * time.Hour, maxRetryAfter: time.Hour, wantDelay: time.Hour, wantOK: true},
		{name: "an overflowing retry-after (ParseRetryAfter's clamp) is capped once, at maxRetryAfter", attempt: 1, retryAfter: time.Duration(math.MaxInt64), maxRetryAfter: 2 * time.Hour, wantDelay: 2 * time.Hour, wantOK: true},
		{name: "retry-after just under the cap is kept", attempt: 1, retryAfter: time.Hour - time.Second, maxRetryAfter: time.Hour, wantDelay: time.Hour - time.Second, wantOK: true},
		{name: "cap below the schedule keeps the schedule", attempt: 5, retryAfter: 48 * time.Hour, maxRetryAfter: time.Hour, wantDelay: 6 * time.Hour, wantOK: true},
		{name: "no cap leaves retry-after as sent", attempt: 1, retryAfter: 48 * time.Hour, wantDelay: 48 * time.Hour, wantOK: true},
		{name: "retry-after cannot extend a finished schedule", attempt: 6, retryAfter: time.Minute, maxRetryAfter: time.Hour, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			due, ok := backoff.Next(sched, tt.attempt, now, tt.retryAfter, tt.maxRetryAfter)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if want := now.Add(tt.wantDelay); !due.Equal(want) {
				t.Errorf("due = %v (+%v), want %v (+%v)", due, due.Sub(now), want, tt.wantDelay)
			}
		})
	}
}

func TestNextEmptyScheduleNeverRetries(t *testing.T) {
	if _, ok := backoff.Next(nil, 1, time.Now(), time.Minute, time.Hour); ok {
		t.Fatal("an empty schedule must not produce a retry")
	}
}
