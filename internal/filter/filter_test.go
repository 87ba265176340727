package filter

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var occurred = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func order(data string) *Event {
	return &Event{Type: "order.created", Tenant: "acme", Collection: "orders", Time: occurred, Data: []byte(data)}
}

// bigList is a payload whose items list takes more than CostLimit to scan.
func bigList(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	return `{"items":[` + strings.Join(items, ",") + `]}`
}

func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		name, expression string
		// wantErr is a part of the error's text; "" when the expression compiles.
		wantErr string
	}{
		{name: "comparison on data", expression: "data.amount > 100"},
		{name: "every variable", expression: `type.startsWith("order.") && tenant == "acme" && collection in ["orders"] && time > timestamp("2026-01-01T00:00:00Z") && has(data.amount)`},
		{name: "dyn result is checked when evaluated", expression: "data.flag"},
		// The examples of docs/subscriptions.md, Content filters.
		{name: "doc: guarded comparison", expression: `has(data.amount) && data.amount > 100 && data.currency == "EUR"`},
		{name: "doc: status", expression: `data.status == "paid"`},
		{name: "doc: nested field", expression: `has(data.customer) && data.customer.country in ["DE", "AT"]`},
		{name: "doc: comprehension", expression: `data.items.exists(i, i.sku.startsWith("GIFT-"))`},
		{name: "doc: type or tenant", expression: `type.endsWith(".deleted") || tenant == "acme"`},
		{name: "doc: weekend", expression: `time.getDayOfWeek("Europe/Berlin") in [0, 6]`},
		{name: "doc: arithmetic", expression: `data.amount * 2.0 > 300`},
		{name: "undeclared variable", expression: "amount > 100", wantErr: "undeclared reference to 'amount'"},
		{name: "syntax error", expression: "data.amount >", wantErr: "Syntax error"},
		{name: "string result", expression: "tenant", wantErr: "evaluates to string; a filter must evaluate to a bool"},
		{name: "type error", expression: `tenant > 3`, wantErr: "found no matching overload for '_>_' applied to '(string, int)'"},
		{name: "always over the cost limit", expression: "[" + strings.Repeat("1,", 200) + "1].map(x, [" + strings.Repeat("1,", 200) + "1].map(y, x * y)).size() > 0",
			wantErr: "more than the limit of 10000"},
		{name: "too long", expression: "true" + strings.Repeat(" ", MaxExpressionLength), wantErr: "keep it at most 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.expression)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Compile: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Compile error = %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr == "" && p.Expression() != tc.expression:
				t.Fatalf("Expression() = %q", p.Expression())
			}
		})
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		name, expression string
		event            *Event
		want             bool
		// wantReason is the Error's Reason; "" when the expression decides.
		wantReason string
	}{
		{name: "true", expression: "data.amount > 100", event: order(`{"amount": 150}`), want: true},
		{name: "false", expression: "data.amount > 100", event: order(`{"amount": 99.5}`)},
		{name: "nested field and string function", expression: `data.customer.email.endsWith("@example.com")`,
			event: order(`{"customer": {"email": "jo@example.com"}}`), want: true},
		{name: "attributes", expression: `type == "order.created" && tenant == "acme" && collection == "orders"`, event: order(`{}`), want: true},
		{name: "time", expression: `time >= timestamp("2026-03-01T12:00:00Z") && time.getHours() == 12`, event: order(`{}`), want: true},
		{name: "has() guards a missing field", expression: "has(data.amount) && data.amount > 100", event: order(`{}`)},
		{name: "list comprehension", expression: `data.items.exists(i, i.sku == "B")`, event: order(`{"items": [{"sku": "A"}, {"sku": "B"}]}`), want: true},
		{name: "empty data reads as an empty object", expression: "size(data) == 0", event: &Event{Type: "t"}, want: true},
		{name: "missing field", expression: "data.amount > 100", event: order(`{}`), wantReason: ReasonEvaluation},
		{name: "arithmetic on doubles", expression: "data.amount * 2.0 > 300", event: order(`{"amount": 150.5}`), want: true},
		{name: "weekend in Berlin (1 March 2026 is a Sunday)", expression: `time.getDayOfWeek("Europe/Berlin") in [0, 6]`, event: order(`{}`), want: true},
		{name: "arithmetic mixing double and int", expression: "data.amount + 1 > 100", event: order(`{"amount": 150}`), wantReason: ReasonEvaluation},
		{name: "not a bool", expression: "data.flag", event: order(`{"flag": "yes"}`), wantReason: ReasonNotBool},
		{name: "bool from data", expression: "data.flag", event: order(`{"flag": true}`), want: true},
		{name: "cost exceeded", expression: "data.items.exists(i, i < 0)", event: order(bigList(5000)), wantReason: ReasonCostExceeded},
		{name: "within the cost limit", expression: "data.items.exists(i, i < 0)", event: order(bigList(500))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.expression)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := p.Match(tc.event)
			var ferr *Error
			switch {
			case tc.wantReason == "" && err != nil:
				t.Fatalf("Match: %v", err)
			case tc.wantReason != "" && (!errors.As(err, &ferr) || ferr.Reason != tc.wantReason):
				t.Fatalf("Match error = %v, want reason %s", err, tc.wantReason)
			case got != tc.want:
				t.Fatalf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

// One Event is evaluated by many programs (every subscription that matched it): each sees the same data.
func TestEventSharedByPrograms(t *testing.T) {
	ev := order(`{"amount": 150}`)
	for _, c := range []struct {
		expression string
		want       bool
	}{{expression: "data.amount > 100", want: true}, {expression: "data.amount > 200", want: false}, {expression: "data.amount == 150.0", want: true}} {
		p, err := Compile(c.expression)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := p.Match(ev); err != nil || got != c.want {
			t.Fatalf("%s: Match = %v, %v; want %v", c.expression, got, err, c.want)
		}
	}
}

func TestCompileKey(t *testing.T) {
	for _, tc := range []struct {
		name, expression string
		// wantErr is a part of the error's text; "" when the expression compiles.
		wantErr string
	}{
		{name: "a string from data", expression: "string(data.order_id)"},
		{name: "the tenant", expression: "tenant"},
		{name: "dyn is checked when evaluated", expression: "data.order_id"},
		{name: "an int", expression: "size(type)"},
		{name: "a bool is not a key", expression: "tenant == 'acme'", wantErr: "evaluates to bool; an ordering key must evaluate to a string or a number"},
		{name: "a list is not a key", expression: "[tenant]", wantErr: "an ordering key must evaluate to a string or a number"},
		{name: "undeclared variable", expression: "order_id", wantErr: "undeclared reference to 'order_id'"},
		{name: "too long", expression: "tenant" + strings.Repeat(" ", MaxExpressionLength), wantErr: "keep it at most 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileKey(tc.expression)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("CompileKey: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("CompileKey error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestKey(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLength+1)
	for _, tc := range []struct {
		name, expression string
		event            *Event
		want             string
		// wantReason is the Error's Reason; "" when the expression gives a key.
		wantReason string
	}{
		{name: "a string field", expression: "data.order_id", event: order(`{"order_id": "o-17"}`), want: "o-17"},
		{name: "a JSON number is a double, written without a fraction", expression: "data.order_id", event: order(`{"order_id": 42}`), want: "42"},
		{name: "string() of a JSON number", expression: "string(data.order_id)", event: order(`{"order_id": 42}`), want: "42"},
		{name: "a fraction is kept", expression: "data.order_id", event: order(`{"order_id": 4.5}`), want: "4.5"},
		{name: "an int", expression: "size(tenant)", event: order(`{}`), want: "4"},
		{name: "the tenant", expression: "tenant", event: order(`{}`), want: "acme"},
		{name: "a long key is kept as its digest", expression: "data.k", event: order(`{"k": "` + long + `"}`),
			want: "sha256:" + fmt.Sprintf("%x", sha256Sum(long))},
		{name: "a missing field", expression: "data.order_id", event: order(`{}`), wantReason: ReasonEvaluation},
		{name: "an object is not a key", expression: "data.order", event: order(`{"order": {"id": 1}}`), wantReason: ReasonNotKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := CompileKey(tc.expression)
			if err != nil {
				t.Fatalf("CompileKey: %v", err)
			}
			got, err := p.Key(tc.event)
			var ferr *Error
			switch {
			case tc.wantReason == "" && err != nil:
				t.Fatalf("Key: %v", err)
			case tc.wantReason != "" && (!errors.As(err, &ferr) || ferr.Reason != tc.wantReason):
				t.Fatalf("Key error = %v, want reason %s", err, tc.wantReason)
			case got != tc.want:
				t.Fatalf("Key = %q, want %q", got, tc.want)
			}
		})
	}
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }
