package delivery

import (
	"context"
	"sync"
	"time"
)

// hostLimiter bounds the attempts in flight to each destination host, so one
// slow endpoint fills only its own slots. Entries exist only while someone holds
// or waits for a slot, so the map does not grow with every host ever seen.
type hostLimiter struct {
	limit int

	mu    sync.Mutex
	hosts map[string]*hostSlots
}

type hostSlots struct {
	sem   chan struct{}
	users int // holders plus waiters; the entry is deleted when it reaches 0
	// fullSince is when the last free slot was taken; zero while one is free.
	fullSince time.Time
}

func newHostLimiter(limit int) *hostLimiter {
	return &hostLimiter{limit: limit, hosts: map[string]*hostSlots{}}
}

// acquire blocks until key has a free slot or ctx is done. The returned release
// must be called exactly once.
func (l *hostLimiter) acquire(ctx context.Context, key string) (release func(), err error) {
	l.mu.Lock()
	h := l.hosts[key]
	if h == nil {
		h = &hostSlots{sem: make(chan struct{}, l.limit)}
		l.hosts[key] = h
	}
	h.users++
	l.mu.Unlock()

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
func (l *hostLimiter) tryAcquire(key string) (release func()) {
	l.mu.Lock()
	h := l.hosts[key]
	if h == nil {
		h = &hostSlots{sem: make(chan struct{}, l.limit)}
		l.hosts[key] = h
	}
	h.users++
	l.mu.Unlock()
	select {
	case h.sem <- struct{}{}:
		l.taken(h)
		return func() { l.free(key, h) }
	default:
		l.leave(key, h)
		return nil
	}
}

// taken notes when a slot taken was the last free one.
func (l *hostLimiter) taken(h *hostSlots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(h.sem) >= l.limit && h.fullSince.IsZero() {
		h.fullSince = time.Now()
	}
}

// free gives a slot back.
func (l *hostLimiter) free(key string, h *hostSlots) {
	<-h.sem
	l.mu.Lock()
	h.fullSince = time.Time{}
	l.mu.Unlock()
	l.leave(key, h)
}

// fullFor reports how long every slot for key has been taken without one coming free (0 while one is free).
// A host or namespace full for longer than a caller would wait is hanging, not busy: waiting is pointless.
func (l *hostLimiter) fullFor(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.hosts[key]; h != nil && !h.fullSince.IsZero() {
		return time.Since(h.fullSince)
	}
	return 0
}

func (l *hostLimiter) leave(key string, h *hostSlots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h.users--
	if h.users == 0 {
		delete(l.hosts, key)
	}
}

// users reports holders plus waiters for key.
func (l *hostLimiter) users(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.hosts[key]; h != nil {
		return h.users
	}
	return 0
}

// full reports whether every slot for key is taken.
func (l *hostLimiter) full(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hosts[key]
	return h != nil && len(h.sem) >= l.limit
}
