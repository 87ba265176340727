package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/hookpost/hookpost/internal/filter"
	"github.com/hookpost/hookpost/internal/source"
)

// filtered is a subscription to every event with a compiled spec.filter.expression.
func filtered(tb testing.TB, name, expression string) *Subscription {
	tb.Helper()
	s := sub(name, "*")
	s.Expression = expression
	s.Filter, s.FilterErr = filter.Compile(expression)
	return s
}

func TestContentFilter(t *testing.T) {
	ev := &source.Event{ID: "e1", Type: "order.created", TenantID: "acme", OccurredAt: t0, Data: json.RawMessage(`{"amount": 150}`)}
	for _, tc := range []struct {
		name string
		subs []*Subscription
		want []string
	}{
		{name: "no expression keeps the match", subs: []*Subscription{sub("plain", "*")}, want: []string{"plain"}},
		{name: "accepted and refused", subs: []*Subscription{filtered(t, "big", "data.amount > 100"), filtered(t, "huge", "data.amount > 1000")},
			want: []string{"big"}},
		{name: "an evaluation error is not delivered", subs: []*Subscription{filtered(t, "missing", "data.total > 1"), sub("plain", "*")},
			want: []string{"plain"}},
		{name: "an expression that does not compile is not delivered", subs: []*Subscription{filtered(t, "broken", "amount >"), filtered(t, "tenant", `tenant == "acme"`)},
			want: []string{"tenant"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := contentFilter(context.Background(), ev, tc.subs)
			if fmt.Sprint(names(got)) != fmt.Sprint(tc.want) {
				t.Fatalf("kept %v, want %v", names(got), tc.want)
			}
		})
	}
}

// BenchmarkMatchWith1000Filters is the per-event cost of content filters: one event matched against 1,000
// subscriptions whose patterns all match it, without filters and with a spec.filter.expression each (1,000
// programs; the event's data parsed once per event). Compare the ns/op of the cases in one run.
func BenchmarkMatchWith1000Filters(b *testing.B) {
	const n = 1000
	data := json.RawMessage(`{"order_id": 4711, "amount": 250.5, "currency": "EUR", "customer": {"id": 17, "country": "DE"},
		"items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}, {"sku": "C-3", "qty": 5}]}`)
	for _, c := range []struct {
		name       string
		expression func(i int) string
	}{
		{name: "no filters", expression: func(int) string { return "" }},
		{name: "comparison", expression: func(i int) string { return fmt.Sprintf("data.amount > %d.0", i) }},
		{name: "attributes and nested field", expression: func(i int) string {
			return fmt.Sprintf(`type == "order.created" && tenant == "t%d" || has(data.customer) && data.customer.id == %d`, i%10, i)
		}},
		{name: "list comprehension", expression: func(i int) string { return fmt.Sprintf(`data.items.exists(it, it.sku == "A-%d")`, i) }},
	} {
		subs := make([]*Subscription, n)
		for i := range subs {
			if e := c.expression(i); e != "" {
				subs[i] = filtered(b, fmt.Sprintf("s%d", i), e)
				if subs[i].FilterErr != nil {
					b.Fatal(subs[i].FilterErr)
				}
			} else {
				subs[i] = sub(fmt.Sprintf("s%d", i), "*")
			}
		}
		idx := NewIndex(subs)
		b.Run(fmt.Sprintf("subscriptions=%d/%s", n, c.name), func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			var dst []*Subscription
			kept := 0
			for b.Loop() {
				// A new event each time, as ingest has: its data is parsed once, inside the loop.
				ev := &source.Event{ID: "e1", Type: "order.created", TenantID: "t3", OccurredAt: t0, Data: data}
				dst = idx.Match(Event{Type: ev.Type, TenantID: ev.TenantID, OccurredAt: ev.OccurredAt}, dst[:0])
				dst = contentFilter(ctx, ev, dst)
				kept = len(dst)
			}
			b.ReportMetric(float64(kept), "delivered/op")
		})
	}
}
