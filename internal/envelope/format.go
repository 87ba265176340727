package envelope

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Format names the shape of a webhook body.
type Format string

const (
	// FormatEnvelope is {"event","tenant_id","timestamp","data"} (product doc 000).
	FormatEnvelope Format = "Envelope"
	// FormatCollection is {"event","collection","payload"} (product doc 002).
	FormatCollection Format = "Collection"
	// FormatCloudEvents is a CloudEvents 1.0 event in structured mode: attributes and data in one JSON body.
	FormatCloudEvents Format = "CloudEvents"
	// FormatCloudEventsBinary is a CloudEvents 1.0 event in HTTP binary mode: the data is the body and the
	// attributes are ce-* headers (see Headers).
	FormatCloudEventsBinary Format = "CloudEventsBinary"
)

const (
	contentTypeJSON        = "application/json"
	contentTypeCloudEvents = "application/cloudevents+json; charset=utf-8"
)

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER. A tenant id above it may print back
// unchanged yet no longer be the integer a receiver can compare or increment safely.
const maxSafeInteger = 1<<53 - 1

// Event is what a body is built from.
type Event struct {
	ID         string
	Type       string
	TenantID   string
	Collection string
	OccurredAt time.Time
	Data       []byte // raw JSON of any shape; empty means null
	Source     string // CloudEvents "source" attribute, e.g. "/hookpost/<namespace>/<subscription>"
}

// Build returns the body bytes and the Content-Type for the format. The body is canonical JSON (see
// Canonical) and depends only on ev, so every retry of a delivery sends, and signs, the same bytes.
func Build(format Format, ev Event) (body []byte, contentType string, err error) {
	if ev.Type == "" {
		return nil, "", errors.New("event type is empty")
	}
	// Every key below is a fixed, distinct, non-numeric name, so writing members in this order is
	// already the order JSON.stringify keeps; only values need canonical encoding. Data comes last in
	// every format, so it is canonicalised straight into the body.
	b := make([]byte, 0, len(ev.Data)+256)
	switch format {
	case FormatEnvelope:
		timestamp, err := formatTimestamp(ev.OccurredAt)
		if err != nil {
			return nil, "", err
		}
		b = append(b, `{"event":`...)
		b = appendJSString(b, ev.Type)
		b = append(b, `,"tenant_id":`...)
		b = appendTenantID(b, ev.TenantID)
		b = append(b, `,"timestamp":`...)
		b = appendJSString(b, timestamp)
		b = append(b, `,"data":`...)
		if b, err = appendData(b, ev.Data); err != nil {
			return nil, "", err
		}
		return append(b, '}'), contentTypeJSON, nil

	case FormatCollection:
		b = append(b, `{"event":`...)
		b = appendJSString(b, ev.Type)
		b = append(b, `,"collection":`...)
		b = appendJSString(b, ev.Collection)
		b = append(b, `,"payload":`...)
		if b, err = appendData(b, ev.Data); err != nil {
			return nil, "", err
		}
		return append(b, '}'), contentTypeJSON, nil

	case FormatCloudEvents:
		timestamp, err := cloudEventsTime(ev)
		if err != nil {
			return nil, "", err
		}
		b = append(b, `{"specversion":"1.0","id":`...)
		b = appendJSString(b, ev.ID)
		b = append(b, `,"source":`...)
		b = appendJSString(b, ev.Source)
		b = append(b, `,"type":`...)
		b = appendJSString(b, ev.Type)
		if ev.Collection != "" {
			b = append(b, `,"subject":`...)
			b = appendJSString(b, ev.Collection)
		}
		b = append(b, `,"time":`...)
		b = appendJSString(b, timestamp)
		b = append(b, `,"datacontenttype":"application/json"`...)
		if ev.TenantID != "" {
			// Extension attribute names must be lowercase alphanumeric, hence not "tenant_id".
			b = append(b, `,"tenantid":`...)
			b = appendJSString(b, ev.TenantID)
		}
		b = append(b, `,"data":`...)
		if b, err = appendData(b, ev.Data); err != nil {
			return nil, "", err
		}
		return append(b, '}'), contentTypeCloudEvents, nil

	case FormatCloudEventsBinary:
		// The attributes travel as headers (Headers), so only the checks that would make them invalid run here.
		if _, err := cloudEventsTime(ev); err != nil {
			return nil, "", err
		}
		if b, err = appendData(b, ev.Data); err != nil {
			return nil, "", err
		}
		return b, contentTypeJSON, nil
	}
	return nil, "", fmt.Errorf("unknown payload format %q", format)
}

// Header is one HTTP header a format sends beside its body.
type Header struct{ Name, Value string }

// Headers returns the headers format sends beside the body Build returns for ev: CloudEventsBinary's ce-*
// attributes, in a fixed order; none for the other formats, which carry everything in the body. The attributes
// are those of the structured CloudEvents body, datacontenttype being the Content-Type header as the HTTP
// binding requires.
func Headers(format Format, ev Event) ([]Header, error) {
	if format != FormatCloudEventsBinary {
		return nil, nil
	}
	timestamp, err := cloudEventsTime(ev)
	if err != nil {
		return nil, err
	}
	h := make([]Header, 0, 6)
	add := func(name, value string) { h = append(h, Header{Name: name, Value: percentEncode(value)}) }
	add("ce-specversion", "1.0")
	add("ce-id", ev.ID)
	add("ce-source", ev.Source)
	add("ce-type", ev.Type)
	if ev.Collection != "" {
		add("ce-subject", ev.Collection)
	}
	add("ce-time", timestamp)
	if ev.TenantID != "" {
		add("ce-tenantid", ev.TenantID)
	}
	return h, nil
}

// cloudEventsTime checks what CloudEvents 1.0 requires of an event in either mode and returns its time
// attribute. id and source are REQUIRED non-empty attributes; a receiver's SDK would reject the event, so fail
// here where the cause is visible.
func cloudEventsTime(ev Event) (string, error) {
	if ev.ID == "" {
		return "", errors.New("cloudevents id is empty")
	}
	if ev.Source == "" {
		return "", errors.New("cloudevents source is empty")
	}
	return formatTimestamp(ev.OccurredAt)
}

// percentEncode encodes an attribute value for a ce-* header as the CloudEvents HTTP binding (3.1.3.2) requires:
// space, double quote, percent and every byte outside printable ASCII become %XX (UTF-8 bytes), so any tenant
// id or collection survives as a valid header value.
func percentEncode(v string) string {
	n := 0
	for i := 0; i < len(v); i++ {
		if needsPercent(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+2*n)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if needsPercent(c) {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func needsPercent(c byte) bool { return c <= ' ' || c >= 0x7f || c == '"' || c == '%' }

// appendData appends the canonical form of the event's data, or null when there is none.
func appendData(dst, data []byte) ([]byte, error) {
	if len(data) == 0 {
		return append(dst, "null"...), nil
	}
	dst, err := appendCanonical(dst, data)
	if err != nil {
		return nil, fmt.Errorf("event data: %w", err)
	}
	return dst, nil
}

// formatTimestamp prints t in UTC as RFC 3339 with seconds and only as many fractional digits as are
// non-zero ("2025-11-16T10:30:00Z"). A zero time is refused rather than replaced by the current time,
// which would change the body, and so the signature, on every retry.
func formatTimestamp(t time.Time) (string, error) {
	if t.IsZero() {
		return "", errors.New("event occurred-at time is zero")
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("event occurred-at year %d is outside RFC 3339's range", y)
	}
	return t.UTC().Format(time.RFC3339Nano), nil
}

// appendTenantID writes the tenant id as product doc 000 shows it, a JSON number, when a receiver's
// JSON.parse gives back exactly that integer; otherwise as a string, so that "007" or an id beyond
// 2^53 reaches the receiver unchanged; null when there is none.
func appendTenantID(dst []byte, id string) []byte {
	if id == "" {
		return append(dst, "null"...)
	}
	digits := id
	if digits[0] == '-' {
		digits = digits[1:]
	}
	canonical := digits != "" && (digits == "0" && id == "0" || digits[0] != '0')
	for i := 0; canonical && i < len(digits); i++ {
		canonical = digits[i] >= '0' && digits[i] <= '9'
	}
	if canonical {
		if v, err := strconv.ParseInt(id, 10, 64); err == nil && v >= -maxSafeInteger && v <= maxSafeInteger {
			return append(dst, id...)
		}
	}
	return appendJSString(dst, id)
}
