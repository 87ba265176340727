package filter_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/filter"
)

// FuzzFilter: no expression a subscription may hold and no event payload makes compiling or evaluating panic, an
// expression that does not decide an event says why with one of the documented reasons, and deciding is a pure
// function of the event (two evaluations agree), since ingest evaluates an expression again when a batch is
// handed back.
func FuzzFilter(f *testing.F) {
	seeds := []struct{ expression, data string }{
		{expression: `data.amount > 100`, data: `{"amount": 150}`},
		{expression: `type.startsWith("order.") && tenant == "acme"`, data: `{}`},
		{expression: `has(data.items) && data.items.exists(i, i.sku == "A-1")`, data: `{"items":[{"sku":"A-1"},{"sku":"B"}]}`},
		{expression: `data.items.all(i, i.qty * 2.0 < 10.0)`, data: `{"items":[1,2,3]}`},
		{expression: `data.name.matches("^[a-z]+$")`, data: `{"name":"\u0000x"}`},
		{expression: `time > timestamp("2026-01-01T00:00:00Z") || collection in ["a", "b"]`, data: ``},
		{expression: `data.n`, data: `{"n": 1e400}`},
		{expression: `[1,2,3].map(x, [x,x,x,x,x,x,x,x].map(y, y*x)).size() > 0`, data: `{"deep":[[[[[[[[1]]]]]]]]}`},
		{expression: `data.list.map(a, data.list.map(b, data.list.map(c, a))).size() > 0`, data: `{"list":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]}`},
	}
	for _, s := range seeds {
		f.Add(s.expression, []byte(s.data))
	}
	reasons := map[string]bool{filter.ReasonEvaluation: true, filter.ReasonCostExceeded: true, filter.ReasonNotBool: true}
	f.Fuzz(func(t *testing.T, expression string, data []byte) {
		p, err := filter.Compile(expression)
		if err != nil {
			if p != nil {
				t.Fatalf("Compile(%q) returned a program and the error %v", expression, err)
			}
			return
		}
		decide := func() (bool, string) {
			ev := &filter.Event{Type: "order.created", Tenant: "acme", Collection: "orders", Time: time.Unix(1700000000, 0).UTC(), Data: data}
			ok, err := p.Match(ev)
			if err == nil {
				return ok, ""
			}
			var fe *filter.Error
			if !errors.As(err, &fe) || !reasons[fe.Reason] {
				t.Fatalf("Match(%q) on %q failed with %v, not an *Error with a documented reason", expression, data, err)
			}
			if ok {
				t.Fatalf("Match(%q) on %q accepted the event and failed (%v)", expression, data, err)
			}
			return false, fe.Reason
		}
		ok1, why1 := decide()
		ok2, why2 := decide()
		if ok1 != ok2 || why1 != why2 {
			t.Fatalf("Match(%q) on %q decided %v (%q), then %v (%q)", expression, data, ok1, why1, ok2, why2)
		}
	})
}
