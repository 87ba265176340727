// Package backoff owns Hookpost's retry policy: when the next attempt of a failed
// delivery is due, how a receiver's Retry-After header bends that schedule, and
// how long a source waits before reconnecting. Everything here is a pure function
// of (schedule, attempt, now, retry-after), so controllers inject the clock and
// tests never sleep.
package backoff
