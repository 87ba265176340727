package source

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultWatermarkTTL is how long Watermarks keeps a source's watermark before reading it again.
const DefaultWatermarkTTL = 200 * time.Millisecond

// Watermarks reads the watermarks of the sources of a process by name, each at most once per TTL however many
// callers ask: the delivery controller asks before every attempt of an ordered delivery, and a watermark is a
// query. A watermark only grows, so a position below the last one read has passed without asking again. Safe for
// concurrent use; sources may be added after it is shared (the binary creates the sources after the controllers).
type Watermarks struct {
	ttl time.Duration

	mu      sync.Mutex
	sources map[string]*watermark
}

type watermark struct {
	src Source

	mu   sync.Mutex // held while reading, so concurrent callers wait for one read
	last uint64
	read time.Time
}

// NewWatermarks returns an empty registry whose readings are kept for ttl (DefaultWatermarkTTL when not positive).
func NewWatermarks(ttl time.Duration) *Watermarks {
	if ttl <= 0 {
		ttl = DefaultWatermarkTTL
	}
	return &Watermarks{ttl: ttl, sources: map[string]*watermark{}}
}

// Add registers src under its Name.
func (w *Watermarks) Add(src Source) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sources[src.Name()] = &watermark{src: src}
}

// Passed reports whether every event of source name below position has been acknowledged, reading the source's
// watermark when the last reading (at most TTL old at now) does not already say so; readAt is when the reading it
// answers from was taken (a caller that must know what else happened before it, such as the objects created
// before those acknowledgements, looks after readAt). The error says why it cannot tell: the source is not
// configured in this process, or its watermark cannot be read.
func (w *Watermarks) Passed(ctx context.Context, name string, position uint64, now time.Time) (passed bool, readAt time.Time, err error) {
	w.mu.Lock()
	m := w.sources[name]
	w.mu.Unlock()
	if m == nil {
		return false, time.Time{}, fmt.Errorf("source %q is not configured on this operator", name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if position < m.last {
		return true, m.read, nil
	}
	if !m.read.IsZero() && now.Sub(m.read) < w.ttl {
		return false, m.read, nil
	}
	mark, err := m.src.Watermark(ctx)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("read the watermark of source %s: %w", name, err)
	}
	m.last, m.read = max(m.last, mark), now
	return position < m.last, now, nil
}
