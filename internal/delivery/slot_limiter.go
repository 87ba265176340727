package delivery

import (
	"context"
	"sync"
	"time"
)

// slotLimiter bounds the attempts in flight per key: the Sender keeps one keyed by destination host, so one slow
// endpoint fills only its own slots, and one keyed by subscription namespace, so one tenant's endpoints fill only
// its share. Entries exist only while someone holds or waits for a slot, so the map does not grow with every key
// ever seen.
type slotLimiter struct {
	limit int

	mu   sync.Mutex
	keys map[string]*keySlots
}

type keySlots struct {
	sem   chan struct{}
	users int // holders plus waiters; the entry is deleted when it reaches 0
	// fullSince is when the last free slot was taken; zero while one is free.
	fullSince time.Time
}

func newSlotLimiter(limit int) *slotLimiter {
	return &slotLimiter{limit: limit, keys: map[string]*keySlots{}}
}

// acquire blocks until key has a free slot or ctx is done. The returned release
// must be called exactly once.
func (l *slotLimiter) acquire(ctx context.Context, key string) (release func(), err error) {
	h := l.enter(key)
	select {
	case h.sem <- struct{}{}:
		l.taken(h)
		return func() { l.free(key, h) }, nil
	case <-ctx.Done():
		l.leave(key, h)
		return nil, ctx.Err()
	}
}

// tryAcquire takes a slot for key if one is free, without waiting; nil when none is.
func (l *slotLimiter) tryAcquire(key string) (release func()) {
	h := l.enter(key)
	select {
	case h.sem <- struct{}{}:
		l.taken(h)
		return func() { l.free(key, h) }
	default:
		l.leave(key, h)
		return nil
	}
}

// enter counts a holder or waiter of key's slots, making its entry if it has none.
func (l *slotLimiter) enter(key string) *keySlots {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.keys[key]
	if h == nil {
		h = &keySlots{sem: make(chan struct{}, l.limit)}
		l.keys[key] = h
	}
	h.users++
	return h
}

// taken notes when a slot taken was the last free one.
func (l *slotLimiter) taken(h *keySlots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(h.sem) >= l.limit && h.fullSince.IsZero() {
		h.fullSince = time.Now()
	}
}

// free gives a slot back.
func (l *slotLimiter) free(key string, h *keySlots) {
	<-h.sem
	l.mu.Lock()
	h.fullSince = time.Time{}
	l.mu.Unlock()
	l.leave(key, h)
}

// fullFor reports how long every slot for key has been taken without one coming free (0 while one is free).
// A host or namespace full for longer than a caller would wait is hanging, not busy: waiting is pointless.
func (l *slotLimiter) fullFor(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.keys[key]; h != nil && !h.fullSince.IsZero() {
		return time.Since(h.fullSince)
	}
	return 0
}

func (l *slotLimiter) leave(key string, h *keySlots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h.users--
	if h.users == 0 {
		delete(l.keys, key)
	}
}

// users reports holders plus waiters for key.
func (l *slotLimiter) users(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.keys[key]; h != nil {
		return h.users
	}
	return 0
}

// full reports whether every slot for key is taken.
func (l *slotLimiter) full(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.keys[key]
	return h != nil && len(h.sem) >= l.limit
}
