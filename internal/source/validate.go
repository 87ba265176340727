package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxDataBytes is the largest payload a source accepts unless configured otherwise.
const DefaultMaxDataBytes = 256 << 10

// MaxTypeLength bounds an event type, so it fits in labels, subjects and delivery names.
const MaxTypeLength = 253

// ValidateEvent returns why ev cannot be delivered, or "" when it can. Both sources apply it, so an event
// malformed in one is malformed in the other. Data must be a JSON object of at most maxDataBytes bytes
// (maxDataBytes <= 0 means DefaultMaxDataBytes): webhook payloads carry it as the envelope's "data" object.
func ValidateEvent(ev Event, maxDataBytes int) string {
	if reason := ValidateType(ev.Type); reason != "" {
		return reason
	}
	if reason := ValidateAttributes(ev); reason != "" {
		return reason
	}
	return ValidateData(ev.Data, maxDataBytes)
}

// ValidateAttributes returns why an event's id, tenant id or collection is unusable, or "" when they are fine:
// they travel in WebhookDelivery fields bounded to 253 characters, and an event the API server refuses must be
// set aside here rather than dropped there. Control characters are refused too: kubectl, the plugin and log
// viewers print these values, and an escape sequence in one (ESC, or the one-byte CSI U+009B) would run in the
// reader's terminal; invalid UTF-8 would be silently replaced on its way into the API, changing the id.
func ValidateAttributes(ev Event) string {
	for _, f := range []struct{ name, value string }{{"event id", ev.ID}, {"tenant id", ev.TenantID}, {"collection", ev.Collection}} {
		if len(f.value) > MaxTypeLength {
			return fmt.Sprintf("%s is %d bytes long: keep it at most %d", f.name, len(f.value), MaxTypeLength)
		}
		if !utf8.ValidString(f.value) {
			return fmt.Sprintf("%s %q is not valid UTF-8: send text", f.name, f.value)
		}
		for i, r := range f.value {
			if unicode.IsControl(r) {
				return fmt.Sprintf("%s %q has a control character (%U) at byte %d, such as a terminal escape sequence: send printable text only",
					f.name, f.value, r, i)
			}
		}
	}
	return ""
}

// ValidateType returns why an event type is unusable, or "" when it is fine.
func ValidateType(eventType string) string {
	switch {
	case eventType == "":
		return "event type is empty: set it to a name such as \"order.created\""
	case len(eventType) > MaxTypeLength:
		return fmt.Sprintf("event type is %d bytes long: keep it at most %d", len(eventType), MaxTypeLength)
	case !utf8.ValidString(eventType):
		return "event type is not valid UTF-8"
	}
	for _, r := range eventType {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Sprintf("event type %q contains whitespace or control characters: use a name such as \"order.created\"", eventType)
		}
	}
	return ""
}

// MaxDataDepth bounds how deeply a payload's objects and arrays nest, the payload object itself being level 1.
// The API server refuses JSON nested past 10,000 levels (k8s.io/apimachinery/pkg/util/json and the decoder of
// sigs.k8s.io/json), and a payload is stored a few levels down in a WebhookDelivery (spec.data) and sent a level
// down in the envelope, whose encoder stops at envelope.MaxDepth (10,000). 100 is far below both, deeper than
// any document meant for a person or a program, and keeps every recursive walk of a payload cheap.
const MaxDataDepth = 100

// ValidateData returns why a payload is unusable, or "" when it is a JSON object within the size and depth limits.
func ValidateData(data []byte, maxDataBytes int) string {
	if maxDataBytes <= 0 {
		maxDataBytes = DefaultMaxDataBytes
	}
	if len(data) > maxDataBytes {
		return OversizeReason(len(data), maxDataBytes)
	}
	if !json.Valid(data) {
		return "payload is not valid JSON: send a JSON object"
	}
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return "payload is JSON but not an object: wrap the value in an object such as {\"value\": ...}"
	}
	if depth := nestingDepth(data); depth > MaxDataDepth {
		return fmt.Sprintf("payload nests objects and arrays %d levels deep, over the limit of %d: flatten it or send the deep part as a string",
			depth, MaxDataDepth)
	}
	return numbersInRange(data)
}

// nestingDepth returns how deeply valid JSON text nests objects and arrays, skipping string contents.
func nestingDepth(data []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString && c == '\\':
			i++ // the escaped byte cannot end the string
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// numbersInRange rejects numbers beyond what a double holds (such as 1e400): a JavaScript receiver would read
// Infinity, and the Kubernetes API refuses to store them.
func numbersInRange(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if n, ok := tok.(json.Number); ok {
			if _, err := strconv.ParseFloat(string(n), 64); err != nil {
				return fmt.Sprintf("payload holds the number %.40s, beyond the range of a double (about 1.8e308): send it as a string", n)
			}
		}
	}
}

// OversizeReason says that a payload of size bytes exceeds maxDataBytes, for sources that measure a payload
// before reading it.
func OversizeReason(size, maxDataBytes int) string {
	return fmt.Sprintf("payload is %d bytes, over the %d byte limit: send a smaller payload or a reference to the data", size, maxDataBytes)
}
