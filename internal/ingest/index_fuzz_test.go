package ingest

import (
	"strings"
	"testing"
	"time"
)

// FuzzIndexMatch checks the index against the definition of matching (patternMatches, a scan of every pattern
// of every subscription) for arbitrary patterns, event types, tenants and collections: the same subscriptions,
// each at most once, so no event is lost to a trie bug and no receiver gets an event twice.
//
// subsSpec holds subscriptions separated by ";", each a comma-separated pattern list, optionally followed by
// "|tenant" and "|collection" filters; filters select the subscriptions whose index is odd (tenant) or a multiple
// of three (collection), so filtered and unfiltered subscriptions mix.
func FuzzIndexMatch(f *testing.F) {
	f.Add("order.*,order.created;*;order.created|t1;*.created|t1|orders;order", "order.created", "t1", "orders", int64(60))
	f.Add("a.b.c;a.*.c;*.*.*;a.b;a..c;*", "a.b.c", "", "", int64(1))
	f.Add("*,*;order.*,*.created,order.created;", "order.created", "t", "c", int64(0))
	f.Add(".;..;*.;.*;*.*", ".", "", "", int64(5))
	f.Add("user.registered,user.*;user.*.*;**;*x", "user.registered", "123", "users", int64(-60))
	f.Fuzz(func(t *testing.T, subsSpec, eventType, tenant, collection string, occurredOffset int64) {
		var subs []*Subscription
		for i, spec := range strings.Split(subsSpec, ";") {
			parts := strings.Split(spec, "|")
			s := &Subscription{Namespace: "ns", Name: "s" + string(rune('a'+i%26)) + strings.Repeat("'", i/26),
				Patterns: strings.Split(parts[0], ","), CreatedAt: t0}
			if len(parts) > 1 && i%2 == 1 {
				s.Tenants = map[string]bool{parts[1]: true}
			}
			if len(parts) > 2 && i%3 == 0 {
				s.Collections = map[string]bool{parts[2]: true}
			}
			subs = append(subs, s)
		}
		ev := Event{Type: eventType, TenantID: tenant, Collection: collection,
			OccurredAt: t0.Add(time.Duration(occurredOffset%3600) * time.Second)}

		got := NewIndex(subs).Match(ev, nil)
		seen := map[*Subscription]int{}
		for _, s := range got {
			seen[s]++
			if seen[s] > 1 {
				t.Fatalf("subscription %s %q matched %q twice", s.Name, s.Patterns, ev.Type)
			}
		}
		for _, s := range subs {
			want := false
			for _, p := range s.Patterns {
				want = want || patternMatches(p, ev.Type)
			}
			want = want && referenceAccepts(s, ev)
			if want != (seen[s] == 1) {
				t.Fatalf("subscription %s %q (tenants %v, collections %v) for event %+v: matched %v, want %v",
					s.Name, s.Patterns, s.Tenants, s.Collections, ev, seen[s] == 1, want)
			}
		}
	})
}

// referenceAccepts restates the filters of accepts from their documentation, so a change to accepts that
// breaks them is caught by the comparison above rather than copied into the reference.
func referenceAccepts(s *Subscription, ev Event) bool {
	if ev.OccurredAt.Before(s.CreatedAt) {
		return false
	}
	if len(s.Tenants) > 0 {
		if _, ok := s.Tenants[ev.TenantID]; !ok {
			return false
		}
	}
	if len(s.Collections) > 0 {
		if _, ok := s.Collections[ev.Collection]; !ok {
			return false
		}
	}
	return true
}
