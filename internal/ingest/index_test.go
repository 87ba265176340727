package ingest

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func sub(name string, patterns ...string) *Subscription {
	return &Subscription{Namespace: "ns", Name: name, Patterns: patterns, CreatedAt: t0}
}

func names(subs []*Subscription) []string {
	var out []string
	for _, s := range subs {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

func TestIndexMatch(t *testing.T) {
	tenant := sub("tenant-123", "order.*")
	tenant.Tenants = map[string]bool{"123": true}
	posts := sub("posts", "*")
	posts.Collections = map[string]bool{"posts": true}
	late := sub("late", "*")
	late.CreatedAt = t0.Add(time.Hour)
	idx := NewIndex([]*Subscription{
		sub("exact", "order.created"),
		sub("segment", "order.*"),
		sub("all", "*"),
		sub("both", "order.*", "order.created"),
		sub("middle", "*.created"),
		sub("deep", "a.*.c"),
		tenant, posts, late,
	})
	at := t0.Add(time.Minute)
	tests := []struct {
		name string
		ev   Event
		want []string
	}{
		{"exact, segment, all and middle wildcards match order.created", Event{Type: "order.created", OccurredAt: at},
			[]string{"all", "both", "exact", "middle", "segment"}},
		{"a * segment matches one segment only", Event{Type: "order.created.v2", OccurredAt: at}, []string{"all"}},
		{"a * segment does not match the empty remainder", Event{Type: "order", OccurredAt: at}, []string{"all"}},
		{"tenant filter passes its tenant", Event{Type: "order.updated", TenantID: "123", OccurredAt: at},
			[]string{"all", "both", "segment", "tenant-123"}},
		{"collection filter passes its collection", Event{Type: "insert", Collection: "posts", OccurredAt: at}, []string{"all", "posts"}},
		{"collection filter drops others", Event{Type: "insert", Collection: "users", OccurredAt: at}, []string{"all"}},
		{"a wildcard in the middle", Event{Type: "a.b.c", OccurredAt: at}, []string{"all", "deep"}},
		{"a subscription sees only events after it exists", Event{Type: "user.registered", OccurredAt: t0.Add(2 * time.Hour)}, []string{"all", "late"}},
		{"events before a subscription existed are not its", Event{Type: "user.registered", OccurredAt: t0.Add(-time.Second)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := names(idx.Match(tc.ev, nil))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Match(%+v) = %v, want %v", tc.ev, got, tc.want)
			}
		})
	}
}

// manySubscriptions builds n subscriptions over a realistic spread of patterns: most exact, some wildcards.
func manySubscriptions(n int) []*Subscription {
	subs := make([]*Subscription, n)
	for i := range subs {
		var p string
		switch i % 10 {
		case 0:
			p = fmt.Sprintf("entity%d.*", i%500)
		case 1:
			p = fmt.Sprintf("*.action%d", i%50)
		default:
			p = fmt.Sprintf("entity%d.action%d", i%500, i%50)
		}
		subs[i] = sub(fmt.Sprintf("s%d", i), p)
	}
	return subs
}

func TestIndexMatchesLikeAScan(t *testing.T) {
	subs := manySubscriptions(2000)
	idx := NewIndex(subs)
	for _, typ := range []string{"entity7.action7", "entity0.action0", "entity3.action40", "other.action3", "entity9.x"} {
		ev := Event{Type: typ, OccurredAt: t0.Add(time.Minute)}
		var scan []*Subscription
		for _, s := range subs {
			if patternMatches(s.Patterns[0], typ) {
				scan = append(scan, s)
			}
		}
		if got, want := names(idx.Match(ev, nil)), names(scan); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: index found %d, scan %d", typ, len(got), len(want))
		}
	}
}

// patternMatches is the definition the index must agree with.
func patternMatches(pattern, typ string) bool {
	if pattern == "*" {
		return true
	}
	ps, ts := splitDots(pattern), splitDots(typ)
	if len(ps) != len(ts) {
		return false
	}
	for i := range ps {
		if ps[i] != "*" && ps[i] != ts[i] {
			return false
		}
	}
	return true
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// BenchmarkMatch shows that matching against 10,000 subscriptions costs about as much as against 100: the index
// walks the event type's segments, it does not scan. Compare the ns/op of the sizes in one run.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{100, 10000} {
		idx := NewIndex(manySubscriptions(n))
		ev := Event{Type: "entity7.action7", OccurredAt: t0.Add(time.Minute)}
		b.Run(fmt.Sprintf("subscriptions=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var dst []*Subscription
			for b.Loop() {
				dst = idx.Match(ev, dst[:0])
			}
		})
	}
}
