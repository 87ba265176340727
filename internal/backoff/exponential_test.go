package backoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/backoff"
)

func TestExponential(t *testing.T) {
	const first, limit = 100 * time.Millisecond, 5 * time.Second
	tests := []struct {
		name         string
		failures     int
		first, limit time.Duration
		want         time.Duration
	}{
		{name: "first failure waits first", failures: 1, first: first, limit: limit, want: 100 * time.Millisecond},
		{name: "second failure doubles", failures: 2, first: first, limit: limit, want: 200 * time.Millisecond},
		{name: "sixth failure", failures: 6, first: first, limit: limit, want: 3200 * time.Millisecond},
		{name: "seventh failure is capped", failures: 7, first: first, limit: limit, want: limit},
		{name: "many failures stay capped", failures: math.MaxInt, first: first, limit: limit, want: limit},
		{name: "no failure yet counts as one", failures: 0, first: first, limit: limit, want: first},
		{name: "negative failures count as one", failures: -3, first: first, limit: limit, want: first},
		{name: "first above the limit is capped", failures: 1, first: time.Minute, limit: limit, want: limit},
		{name: "zero first never waits", failures: 10, first: 0, limit: limit, want: 0},
		{name: "negative limit never waits", failures: 3, first: first, limit: -time.Second, want: 0},
		{name: "a huge limit doubles as far as it fits", failures: 34, first: time.Second, limit: math.MaxInt64, want: 1 << 33 * time.Second},
		{name: "a huge limit caps instead of overflowing", failures: 35, first: time.Second, limit: math.MaxInt64, want: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoff.Exponential(tt.failures, tt.first, tt.limit); got != tt.want {
				t.Errorf("Exponential(%d, %v, %v) = %v, want %v", tt.failures, tt.first, tt.limit, got, tt.want)
			}
		})
	}
}
