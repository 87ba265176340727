package controller

import (
	"math"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Default replay limits (--replay-interval, --replay-rate, --replay-burst). Each replay re-sends an event with a
// fresh timestamp and signature, so an annotation patched in a loop would otherwise make a request per patch.
const (
	DefaultReplayInterval  = 10 * time.Second
	DefaultReplayPerMinute = 10
	DefaultReplayBurst     = 20
)

// ReplayLimits bound how often replays are sent: per delivery at most one per Interval, per subscription a token
// bucket refilled at PerMinute with room for Burst. Zero values take the defaults.
type ReplayLimits struct {
	Interval  time.Duration
	PerMinute float64
	Burst     int
}

func (l ReplayLimits) withDefaults() ReplayLimits {
	if l.Interval <= 0 {
		l.Interval = DefaultReplayInterval
	}
	if l.PerMinute <= 0 {
		l.PerMinute = DefaultReplayPerMinute
	}
	if l.Burst <= 0 {
		l.Burst = DefaultReplayBurst
	}
	return l
}

// replayLimiter decides when a requested replay may go. It lives in memory: a restart forgets it, which costs at
// most one extra replay per delivery and one burst per subscription, and needs no API write per decision.
type replayLimiter struct {
	limits ReplayLimits

	mu         sync.Mutex
	deliveries map[types.UID]time.Time         // last replay accepted
	buckets    map[types.NamespacedName]bucket // per subscription
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newReplayLimiter(l ReplayLimits) *replayLimiter {
	return &replayLimiter{limits: l.withDefaults(), deliveries: map[types.UID]time.Time{}, buckets: map[types.NamespacedName]bucket{}}
}

// reserve takes a replay of delivery uid of subscription sub at now, or returns how long to wait: nothing is taken
// then, and the caller asks again after the wait (another delivery of the subscription may have taken the token
// meanwhile; the replay then waits again, it is never dropped).
func (l *replayLimiter) reserve(uid types.UID, sub types.NamespacedName, now time.Time) (wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.deliveries[uid]; ok {
		wait = last.Add(l.limits.Interval).Sub(now)
	}
	b := l.refilled(sub, now)
	if short := 1 - b.tokens; short > 1e-9 { // tolerance: float refills must not defer a replay by a nanosecond
		wait = max(wait, time.Duration(math.Ceil(short/l.limits.PerMinute*float64(time.Minute))))
	}
	if wait > 0 {
		return wait
	}
	b.tokens = max(b.tokens-1, 0)
	l.buckets[sub] = b
	l.deliveries[uid] = now
	l.sweep(now)
	return 0
}

// refilled is sub's bucket as of now.
func (l *replayLimiter) refilled(sub types.NamespacedName, now time.Time) bucket {
	b, ok := l.buckets[sub]
	if !ok {
		return bucket{tokens: float64(l.limits.Burst), at: now}
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(float64(l.limits.Burst), b.tokens+elapsed.Minutes()*l.limits.PerMinute)
		b.at = now
	}
	return b
}

// sweep forgets deliveries whose interval has passed and buckets that are full again, once the maps grow, so
// memory follows recent replays rather than every delivery ever replayed.
func (l *replayLimiter) sweep(now time.Time) {
	if len(l.deliveries) < 1024 && len(l.buckets) < 1024 {
		return
	}
	for uid, last := range l.deliveries {
		if now.Sub(last) >= l.limits.Interval {
			delete(l.deliveries, uid)
		}
	}
	for sub := range l.buckets {
		if l.refilled(sub, now).tokens >= float64(l.limits.Burst) {
			delete(l.buckets, sub)
		}
	}
}
