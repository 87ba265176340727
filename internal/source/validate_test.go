package source

import (
	"strings"
	"testing"
)

func TestValidateEvent(t *testing.T) {
	tests := []struct {
		name       string
		ev         Event
		max        int
		wantReason string // substring; "" means valid
	}{
		{"object payload", Event{Type: "order.created", Data: []byte(`{"order_id":1}`)}, 0, ""},
		{"object with leading space", Event{Type: "order.created", Data: []byte(" \n{}")}, 0, ""},
		{"empty type", Event{Data: []byte(`{}`)}, 0, "event type is empty"},
		{"type with space", Event{Type: "order created", Data: []byte(`{}`)}, 0, "whitespace"},
		{"type too long", Event{Type: strings.Repeat("a", MaxTypeLength+1), Data: []byte(`{}`)}, 0, "at most"},
		{"invalid json", Event{Type: "t", Data: []byte(`{"a":`)}, 0, "not valid JSON"},
		{"empty payload", Event{Type: "t"}, 0, "not valid JSON"},
		{"array payload", Event{Type: "t", Data: []byte(`[1]`)}, 0, "not an object"},
		{"string payload", Event{Type: "t", Data: []byte(`"x"`)}, 0, "not an object"},
		{"oversize", Event{Type: "t", Data: []byte(`{"a":"0123456789"}`)}, 10, "over the 10 byte limit"},
		{"at the limit", Event{Type: "t", Data: []byte(`{"a":1234}`)}, 10, ""},
		{"a number beyond a double", Event{Type: "t", Data: []byte(`{"a":[1, {"b": 1e400}]}`)}, 0, "beyond the range of a double"},
		{"big but finite numbers", Event{Type: "t", Data: []byte(`{"a":1.7e308,"b":123456789012345678901234567890}`)}, 0, ""},
		{"tenant id too long", Event{Type: "t", TenantID: strings.Repeat("7", 254), Data: []byte(`{}`)}, 0, "tenant id is 254 bytes long"},
		{"event id too long", Event{Type: "t", ID: strings.Repeat("x", 300), Data: []byte(`{}`)}, 0, "event id is 300 bytes long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ValidateEvent(tt.ev, tt.max)
			if tt.wantReason == "" && got != "" {
				t.Fatalf("want valid, got %q", got)
			}
			if !strings.Contains(got, tt.wantReason) {
				t.Fatalf("want reason containing %q, got %q", tt.wantReason, got)
			}
		})
	}
}
