package backoff

import "time"

// DefaultSchedule is the delay before each retry after the first attempt fails:
// 1 minute, 5 minutes, 15 minutes, 1 hour and 6 hours (product doc 000's retry
// schedule). With it a delivery makes at most six attempts over about 7.4 hours.
var DefaultSchedule = []time.Duration{
	time.Minute,
	5 * time.Minute,
	15 * time.Minute,
	time.Hour,
	6 * time.Hour,
}

// Next returns when attempt number attempt+1 is due, given that attempt number
// attempt (1-based) failed at now.
//
// Attempt 1 is made immediately when the delivery is created, so attempt n+1
// waits schedule[n-1]. When attempt > len(schedule) there is no next attempt
// (ok is false) and the delivery has Failed.
//
// retryAfter is the receiver's Retry-After (from any 4xx or 5xx that is retried), zero when it sent
// none. It replaces the schedule's delay only when it is longer: a receiver may
// ask us to slow down but not to hammer it faster than the schedule. It is capped
// at maxRetryAfter so a hostile or buggy receiver cannot park a delivery for
// days; a non-positive maxRetryAfter leaves it uncapped. This is the only cap: the sender reports
// Retry-After as the receiver sent it.
func Next(schedule []time.Duration, attempt int, now time.Time, retryAfter, maxRetryAfter time.Duration) (due time.Time, ok bool) {
	if attempt < 1 {
		// Nothing has been attempted yet: the first attempt is immediate.
		return now, true
	}
	if attempt > len(schedule) {
		return time.Time{}, false
	}
	delay := schedule[attempt-1]
	if maxRetryAfter > 0 && retryAfter > maxRetryAfter {
		retryAfter = maxRetryAfter
	}
	if retryAfter > delay {
		delay = retryAfter
	}
	return now.Add(delay), true
}
