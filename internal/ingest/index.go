package ingest

import (
	"strings"
	"time"

	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/filter"
)

// Subscription is what matching needs to know about a WebhookSubscription.
type Subscription struct {
	Namespace, Name string
	UID             string
	Patterns        []string
	// Tenants and Collections filter when not empty.
	Tenants, Collections map[string]bool
	// CreatedAt: a subscription sees only events that occur after it exists.
	CreatedAt time.Time
	// SucceededLimit is spec.history.succeededLimit: how many succeeded deliveries stay visible as objects.
	SucceededLimit int
	// Grant is the namespace's tenant grant under tenant isolation: an event reaches the subscription only when
	// the grant allows its tenant. nil when isolation is off.
	Grant *controller.TenantGrant
	// Expression is spec.filter.expression, "" for none. The Ingester compiles it into Filter, or FilterErr when
	// it does not compile; it is evaluated after Match (see contentFilter).
	Expression string
	Filter     *filter.Program
	FilterErr  error
	// OrderingKey is spec.ordering.key, "" when the subscription does not order its deliveries. The Ingester
	// compiles it into Ordering, nil when it does not compile (every event then gets the key "").
	OrderingKey string
	Ordering    *filter.Program
}

// Event is what matching needs to know about an event.
type Event struct {
	Type, TenantID, Collection string
	OccurredAt                 time.Time
}

// Index finds the subscriptions an event matches without scanning them all: patterns are stored in a trie of
// dot-separated segments, where a * segment is its own branch, so a lookup costs a walk of the event type's
// segments whatever the number of subscriptions.
type Index struct {
	root node
	// all holds subscriptions with the pattern "*".
	all []*Subscription
}

type node struct {
	children map[string]*node
	star     *node
	subs     []*Subscription
}

// NewIndex builds an index over subs.
func NewIndex(subs []*Subscription) *Index {
	idx := &Index{}
	for _, s := range subs {
		for _, p := range s.Patterns {
			if p == "*" {
				idx.all = append(idx.all, s)
				continue
			}
			idx.root.insert(strings.Split(p, "."), s)
		}
	}
	return idx
}

func (n *node) insert(segs []string, s *Subscription) {
	if len(segs) == 0 {
		n.subs = append(n.subs, s)
		return
	}
	var next *node
	if segs[0] == "*" {
		if n.star == nil {
			n.star = &node{}
		}
		next = n.star
	} else {
		if n.children == nil {
			n.children = map[string]*node{}
		}
		if next = n.children[segs[0]]; next == nil {
			next = &node{}
			n.children[segs[0]] = next
		}
	}
	next.insert(segs[1:], s)
}

// Match appends to dst the subscriptions that receive ev, each once, and returns dst.
func (idx *Index) Match(ev Event, dst []*Subscription) []*Subscription {
	start := len(dst)
	dst = idx.root.match(ev.Type, dst)
	for _, s := range idx.all {
		dst = append(dst, s)
	}
	// A subscription with two patterns that both match ("order.*" and "order.created") is delivered once. Only
	// such subscriptions need the seen-set, so the common case allocates nothing.
	out := dst[:start]
	var seen map[*Subscription]bool
	for _, s := range dst[start:] {
		if !accepts(s, ev) {
			continue
		}
		if len(s.Patterns) > 1 {
			if seen == nil {
				seen = map[*Subscription]bool{}
			}
			if seen[s] {
				continue
			}
			seen[s] = true
		}
		out = append(out, s)
	}
	return out
}

func (n *node) match(rest string, dst []*Subscription) []*Subscription {
	seg, tail, more := strings.Cut(rest, ".")
	next := func(child *node) {
		if child == nil {
			return
		}
		if more {
			dst = child.match(tail, dst)
		} else {
			dst = append(dst, child.subs...)
		}
	}
	next(n.children[seg])
	next(n.star)
	return dst
}

func accepts(s *Subscription, ev Event) bool {
	if ev.OccurredAt.Before(s.CreatedAt) {
		return false
	}
	if s.Grant != nil && !s.Grant.Allows(ev.TenantID) {
		return false
	}
	if len(s.Tenants) > 0 && !s.Tenants[ev.TenantID] {
		return false
	}
	if len(s.Collections) > 0 && !s.Collections[ev.Collection] {
		return false
	}
	return true
}
