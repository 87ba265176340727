package controller

import (
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
)

func TestFirstAttemptRoundTripsThroughItsAnnotation(t *testing.T) {
	start := time.Date(2026, 12, 3, 10, 0, 0, 123456789, time.UTC)
	out := delivery.Outcome{StatusCode: 503, Duration: 1500 * time.Millisecond, Error: "HTTP 503 Service Unavailable",
		ResponseBody: []byte{0xff, 'b', 'u', 's', 'y'}, RetryAfter: 2 * time.Minute, Class: delivery.ClassRetry}
	got, err := DecodeFirstAttempt(NewFirstAttempt(out, start, start.Add(out.Duration)).Encode())
	if err != nil {
		t.Fatal(err)
	}
	back := got.Outcome()
	if !got.Start.Equal(start) || !got.End.Equal(start.Add(out.Duration)) || back.StatusCode != 503 || back.Duration != out.Duration ||
		back.Error != out.Error || string(back.ResponseBody) != string(out.ResponseBody) || back.RetryAfter != out.RetryAfter || back.Class != out.Class {
		t.Fatalf("decoded %+v, want %+v from %s", back, out, start)
	}
	for _, bad := range []string{"", "{", `{"class":"Succeeded"}`, `{"start":"2026-12-03T10:00:00Z"}`} {
		if _, err := DecodeFirstAttempt(bad); err == nil {
			t.Errorf("DecodeFirstAttempt(%q) accepted it", bad)
		}
	}
}
