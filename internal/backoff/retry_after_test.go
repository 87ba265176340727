package backoff_test

import (
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/backoff"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		name string
		v    string
		want time.Duration
	}{
		{name: "absent", v: "", want: 0},
		{name: "delta seconds", v: "120", want: 2 * time.Minute},
		{name: "surrounding whitespace", v: "  5 ", want: 5 * time.Second},
		{name: "zero", v: "0", want: 0},
		{name: "negative is invalid", v: "-30", want: 0},
		{name: "fraction is invalid", v: "1.5", want: 0},
		{name: "garbage", v: "soon", want: 0},
		{name: "huge delta clamps instead of overflowing", v: "99999999999999999999999", want: time.Duration(1<<63-1) / time.Second * time.Second},
		{name: "IMF-fixdate in the future", v: "Sun, 16 Nov 2025 10:35:00 GMT", want: 5 * time.Minute},
		{name: "RFC 850 date in the future", v: "Sunday, 16-Nov-25 11:30:00 GMT", want: time.Hour},
		{name: "asctime date in the future", v: "Sun Nov 16 10:31:00 2025", want: time.Minute},
		{name: "date in the past", v: "Sun, 16 Nov 2025 10:00:00 GMT", want: 0},
		{name: "date equal to now", v: "Sun, 16 Nov 2025 10:30:00 GMT", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoff.ParseRetryAfter(tt.v, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}
