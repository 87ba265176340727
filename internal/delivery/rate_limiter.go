package delivery

import (
	"sync"
	"time"
)

// RateLimit bounds how often a subscription's attempts start: PerSecond on average, up to Burst at once after a
// quiet spell. The zero value is no limit.
type RateLimit struct {
	PerSecond int
	// Burst is how many attempts may start back to back; below 1 it is 1.
	Burst int
}

// Limited reports whether r limits anything.
func (r RateLimit) Limited() bool { return r.PerSecond > 0 }

// interval is the spacing of attempts at the limit's pace.
func (r RateLimit) interval() time.Duration { return time.Second / time.Duration(r.PerSecond) }

// window is how far ahead of now the bucket may be booked before an attempt has to wait: Burst intervals.
func (r RateLimit) window() time.Duration { return r.interval() * time.Duration(max(r.Burst, 1)) }

// rateLimiter is a token bucket per key (a subscription), kept as the time the bucket is booked until (the generic
// cell rate algorithm): integer arithmetic on the caller's now, so a fake clock drives it exactly. A key whose
// bucket is full again (booked until the past) holds nothing worth keeping; such entries are swept as keys come and
// go, so the map does not grow with every subscription ever limited.
type rateLimiter struct {
	mu      sync.Mutex
	buckets map[string]*rateBucket
	// sweepAt is the number of buckets at which full ones are swept next.
	sweepAt int
}

type rateBucket struct {
	limit RateLimit
	// bookedUntil is when the attempts admitted so far have used up the bucket, at the limit's pace.
	bookedUntil time.Time
}

// minSweep is the number of buckets below which none are swept.
const minSweep = 64

func newRateLimiter() *rateLimiter {
	return &rateLimiter{buckets: map[string]*rateBucket{}, sweepAt: minSweep}
}

// take admits one attempt of key at now if limit allows it, and books nothing when it does not.
func (l *rateLimiter) take(key string, limit RateLimit, now time.Time) bool {
	if !limit.Limited() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, limit, now)
	next := later(b.bookedUntil, now).Add(limit.interval())
	if next.Sub(now) > limit.window() {
		return false
	}
	b.bookedUntil = next
	return true
}

// reserve books one attempt of key and returns when it may start: now when limit allows it at once, else the
// earliest time after the attempts booked before it. A caller that waits does so holding its booking, without
// asking again: a backlog then wakes one at a time at the limit's pace (in the order it was booked), instead of
// every waiter coming back for each token. A booking not used is an attempt not made: the limit is never exceeded,
// only under-used.
func (l *rateLimiter) reserve(key string, limit RateLimit, now time.Time) time.Time {
	if !limit.Limited() {
		return now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, limit, now)
	b.bookedUntil = later(b.bookedUntil, now).Add(limit.interval())
	return later(b.bookedUntil.Add(-limit.window()), now)
}

// bucket returns key's bucket, made or changed to limit. A changed limit starts from a full bucket: bookings made
// at the old pace are still honoured by their holders, so right after a change up to both paces can overlap once.
func (l *rateLimiter) bucket(key string, limit RateLimit, now time.Time) *rateBucket {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.sweepAt {
			l.sweep(now)
		}
		b = &rateBucket{limit: limit, bookedUntil: now}
		l.buckets[key] = b
	}
	if b.limit != limit {
		b.limit, b.bookedUntil = limit, now
	}
	return b
}

// sweep drops the buckets that are full again at now, and sets the size of the next sweep to twice what is left, so
// sweeping costs amortized constant time per new key.
func (l *rateLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if !b.bookedUntil.After(now) {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(2*len(l.buckets), minSweep)
}

// size reports how many buckets are kept.
func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
