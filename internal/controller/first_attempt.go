package controller

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
)

// FirstAttempt is the outcome of an attempt that ingest made before the delivery object existed. It travels in
// the object's AnnotationFirstAttempt annotation, so the create that makes the delivery durable records the
// attempt too: a crash between the attempt and a separate status write could otherwise send attempt 1 twice.
type FirstAttempt struct {
	Start      time.Time      `json:"start"`
	End        time.Time      `json:"end"`
	StatusCode int            `json:"statusCode,omitempty"`
	Duration   time.Duration  `json:"duration"`
	Error      string         `json:"error,omitempty"`
	Response   []byte         `json:"response,omitempty"`
	RetryAfter time.Duration  `json:"retryAfter,omitempty"`
	Class      delivery.Class `json:"class"`
}

// NewFirstAttempt records out, an attempt that started at start and was classified at end.
func NewFirstAttempt(out delivery.Outcome, start, end time.Time) FirstAttempt {
	return FirstAttempt{Start: start, End: end, StatusCode: out.StatusCode, Duration: out.Duration, Error: out.Error,
		Response: out.ResponseBody, RetryAfter: out.RetryAfter, Class: out.Class}
}

// Outcome returns the attempt's outcome as the sender reported it.
func (f FirstAttempt) Outcome() delivery.Outcome {
	return delivery.Outcome{StatusCode: f.StatusCode, Duration: f.Duration, Error: f.Error, ResponseBody: f.Response,
		RetryAfter: f.RetryAfter, Class: f.Class}
}

// Encode returns the annotation value.
func (f FirstAttempt) Encode() string {
	b, _ := json.Marshal(f) // plain values: cannot fail
	return string(b)
}

// DecodeFirstAttempt reads an annotation value written by Encode.
func DecodeFirstAttempt(s string) (FirstAttempt, error) {
	var f FirstAttempt
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return FirstAttempt{}, fmt.Errorf("decode first attempt: %w", err)
	}
	if f.Class == "" || f.Start.IsZero() {
		return FirstAttempt{}, fmt.Errorf("decode first attempt: no class or start time")
	}
	return f, nil
}
