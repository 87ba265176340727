// Package backoff owns Hookpost's retry policy: when the next attempt of a failed
// delivery is due, and how a receiver's Retry-After header bends that schedule.
// Everything here is a pure function of (schedule, attempt, now, retry-after), so
// controllers inject the clock and tests never sleep.
package backoff
