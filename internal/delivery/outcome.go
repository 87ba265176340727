package delivery

import "time"

// Outcome is what one attempt produced, for the delivery's status and metrics.
type Outcome struct {
	// StatusCode is the receiver's HTTP status, 0 when there was no response.
	StatusCode int
	// Duration is how long the attempt took, from dial to the last body byte read.
	Duration time.Duration
	// Error is a short human message for status, empty on success. It never
	// contains the signing secret or the URL's credentials.
	Error string
	// ResponseBody is the first MaxResponseBody bytes of the receiver's answer.
	ResponseBody []byte
	// RetryAfter is the receiver's Retry-After on a 4xx or 5xx answer that is retried (uncapped: backoff.Next
	// caps it), 0 otherwise.
	RetryAfter time.Duration
	// Class says what happens next: done, retry, or stop.
	Class Class
}
