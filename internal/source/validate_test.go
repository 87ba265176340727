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
		{"event id with a NUL", Event{Type: "t", ID: "evt\x00", Data: []byte(`{}`)}, 0, `event id "evt\x00" has a control character (U+0000) at byte 3`},
		{"tenant with an escape sequence", Event{Type: "t", TenantID: "\x1b[2Jacme", Data: []byte(`{}`)}, 0, `tenant id "\x1b[2Jacme" has a control character (U+001B) at byte 0`},
		{"collection with a C1 CSI", Event{Type: "t", Collection: "posts\u009b31m", Data: []byte(`{}`)}, 0, `collection "posts\u009b31m" has a control character (U+009B)`},
		{"collection with a line break", Event{Type: "t", Collection: "posts\n", Data: []byte(`{}`)}, 0, "control character (U+000A)"},
		{"tenant not UTF-8", Event{Type: "t", TenantID: "t\xff", Data: []byte(`{}`)}, 0, `tenant id "t\xff" is not valid UTF-8`},
		{"printable unicode attributes", Event{Type: "t", ID: "évt-1", TenantID: "租户", Collection: "posts 2025", Data: []byte(`{}`)}, 0, ""},
		{"nested to the limit", Event{Type: "t", Data: nested(MaxDataDepth)}, 0, ""},
		{"nested past the limit", Event{Type: "t", Data: nested(MaxDataDepth + 1)}, 0, "payload nests objects and arrays 101 levels deep, over the limit of 100"},
		{"brackets inside strings do not count", Event{Type: "t", Data: []byte(`{"a":"` + strings.Repeat("[{", 200) + `\"]"}`)}, 0, ""},
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

// nested returns an object nesting objects and arrays depth levels deep, itself being level 1.
func nested(depth int) []byte {
	inner := depth - 1
	return []byte(`{"a":` + strings.Repeat(`[{"b":`, inner/2) + strings.Repeat("[", inner%2) + "1" +
		strings.Repeat("]", inner%2) + strings.Repeat("}]", inner/2) + "}")
}
