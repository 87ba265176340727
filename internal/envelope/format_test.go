package envelope

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var occurredAt = time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC)

// userRegistered is product doc 000's "User Registered" example, written with the spacing a source
// might use; the body must come out compact.
var userRegistered = Event{
	ID:         "evt_1",
	Type:       "user.registered",
	TenantID:   "123",
	OccurredAt: occurredAt,
	Data: []byte(`{
		"user_id": 42,
		"name": "John Doe",
		"email": "john@example.com",
		"role": "MEMBER",
		"invited_by": 17
	}`),
}

const userRegisteredData = `{"user_id":42,"name":"John Doe","email":"john@example.com","role":"MEMBER","invited_by":17}`

func TestBuild(t *testing.T) {
	dubai := time.FixedZone("GST", 4*60*60)
	tests := []struct {
		name            string
		format          Format
		ev              Event
		wantBody        string
		wantContentType string
	}{
		{
			name:            "doc 000 user.registered",
			format:          FormatEnvelope,
			ev:              userRegistered,
			wantBody:        `{"event":"user.registered","tenant_id":123,"timestamp":"2025-11-16T10:30:00Z","data":` + userRegisteredData + `}`,
			wantContentType: "application/json",
		},
		{
			name:   "doc 002 insert",
			format: FormatCollection,
			ev: Event{
				Type:       "insert",
				Collection: "posts",
				OccurredAt: occurredAt,
				Data:       []byte(`{"_id": "64fd1234abcd5678ef901234", "title": "Hello World", "body": "Content here..."}`),
			},
			wantBody:        `{"event":"insert","collection":"posts","payload":{"_id":"64fd1234abcd5678ef901234","title":"Hello World","body":"Content here..."}}`,
			wantContentType: "application/json",
		},
		{
			name:   "cloudevents with subject and tenant",
			format: FormatCloudEvents,
			ev: Event{
				ID: "evt_1", Type: "insert", TenantID: "123", Collection: "posts", OccurredAt: occurredAt,
				Source: "/hookpost/shop/orders", Data: []byte(`{"a":1}`),
			},
			wantBody: `{"specversion":"1.0","id":"evt_1","source":"/hookpost/shop/orders","type":"insert","subject":"posts",` +
				`"time":"2025-11-16T10:30:00Z","datacontenttype":"application/json","tenantid":"123","data":{"a":1}}`,
			wantContentType: "application/cloudevents+json; charset=utf-8",
		},
		{
			name:   "cloudevents without optional attributes",
			format: FormatCloudEvents,
			ev:     Event{ID: "evt_1", Type: "t", OccurredAt: occurredAt, Source: "/s"},
			wantBody: `{"specversion":"1.0","id":"evt_1","source":"/s","type":"t",` +
				`"time":"2025-11-16T10:30:00Z","datacontenttype":"application/json","data":null}`,
			wantContentType: "application/cloudevents+json; charset=utf-8",
		},
		{
			name:   "cloudevents binary mode: the data alone is the body",
			format: FormatCloudEventsBinary,
			ev: Event{
				ID: "evt_1", Type: "insert", TenantID: "123", Collection: "posts", OccurredAt: occurredAt,
				Source: "/hookpost/shop/orders", Data: []byte(`{"b": 2.0, "a": 1}`),
			},
			wantBody:        `{"b":2,"a":1}`,
			wantContentType: "application/json",
		},
		{
			name:            "timestamp is UTC with only non-zero fractional digits",
			format:          FormatEnvelope,
			ev:              Event{Type: "t", OccurredAt: time.Date(2025, 11, 16, 14, 30, 0, 120_000_000, dubai)},
			wantBody:        `{"event":"t","tenant_id":null,"timestamp":"2025-11-16T10:30:00.12Z","data":null}`,
			wantContentType: "application/json",
		},
		{
			name:            "data is canonicalised and strings are escaped as JavaScript does",
			format:          FormatCollection,
			ev:              Event{Type: "a\"b\u2028", Collection: "<c>\x01", OccurredAt: occurredAt, Data: []byte(`{"2":1.0,"1":"\u00e9"}`)},
			wantBody:        "{\"event\":\"a\\\"b\u2028\",\"collection\":\"<c>\\u0001\",\"payload\":{\"1\":\"é\",\"2\":1}}",
			wantContentType: "application/json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, contentType, err := Build(tt.format, tt.ev)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if string(body) != tt.wantBody {
				t.Errorf("body\n got %s\nwant %s", body, tt.wantBody)
			}
			if contentType != tt.wantContentType {
				t.Errorf("content type %q, want %q", contentType, tt.wantContentType)
			}
		})
	}
}

func TestBuildTenantID(t *testing.T) {
	tests := []struct {
		tenantID string
		want     string
	}{
		{"123", `123`},
		{"0", `0`},
		{"-5", `-5`},
		{"9007199254740991", `9007199254740991`},
		{"", `null`},
		{"007", `"007"`},
		{"-0", `"-0"`},
		{"+5", `"+5"`},
		{"1e3", `"1e3"`},
		{"9007199254740992", `"9007199254740992"`},
		{"9007199254740993", `"9007199254740993"`},
		{"123456789012345678901234567890", `"123456789012345678901234567890"`},
		{"acme", `"acme"`},
		{"-", `"-"`},
	}
	for _, tt := range tests {
		body, _, err := Build(FormatEnvelope, Event{Type: "t", TenantID: tt.tenantID, OccurredAt: occurredAt})
		if err != nil {
			t.Fatalf("Build with tenant %q: %v", tt.tenantID, err)
		}
		want := `{"event":"t","tenant_id":` + tt.want + `,"timestamp":"2025-11-16T10:30:00Z","data":null}`
		if string(body) != want {
			t.Errorf("tenant %q:\n got %s\nwant %s", tt.tenantID, body, want)
		}
	}
}

func TestBuildIsStableAcrossRetries(t *testing.T) {
	first, _, err := Build(FormatEnvelope, userRegistered)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, _, err := Build(FormatEnvelope, userRegistered)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(first) {
			t.Fatalf("body changed between builds:\n%s\n%s", first, again)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	valid := Event{ID: "e", Type: "t", Source: "/s", OccurredAt: occurredAt}
	tests := []struct {
		name    string
		format  Format
		mutate  func(*Event)
		wantErr string
	}{
		{"unknown format", "Protobuf", func(*Event) {}, `unknown payload format "Protobuf"`},
		{"empty format", "", func(*Event) {}, `unknown payload format ""`},
		{"invalid data", FormatEnvelope, func(e *Event) { e.Data = []byte(`{"a":}`) }, "event data: invalid JSON at byte offset 5"},
		{"empty type", FormatCollection, func(e *Event) { e.Type = "" }, "event type is empty"},
		{"zero time", FormatEnvelope, func(e *Event) { e.OccurredAt = time.Time{} }, "event occurred-at time is zero"},
		{"year beyond RFC 3339", FormatCloudEvents, func(e *Event) { e.OccurredAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "outside RFC 3339's range"},
		{"cloudevents without id", FormatCloudEvents, func(e *Event) { e.ID = "" }, "cloudevents id is empty"},
		{"cloudevents without source", FormatCloudEvents, func(e *Event) { e.Source = "" }, "cloudevents source is empty"},
		{name: "binary cloudevents without id", format: FormatCloudEventsBinary, mutate: func(e *Event) { e.ID = "" }, wantErr: "cloudevents id is empty"},
		{name: "binary cloudevents without source", format: FormatCloudEventsBinary, mutate: func(e *Event) { e.Source = "" }, wantErr: "cloudevents source is empty"},
		{name: "binary cloudevents with a zero time", format: FormatCloudEventsBinary, mutate: func(e *Event) { e.OccurredAt = time.Time{} }, wantErr: "event occurred-at time is zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := valid
			tt.mutate(&ev)
			_, _, err := Build(tt.format, ev)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	_, _, err := Build(FormatEnvelope, Event{Type: "t", OccurredAt: occurredAt, Data: []byte("[")})
	if !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("invalid data error %v does not wrap ErrInvalidJSON", err)
	}
}

func TestHeaders(t *testing.T) {
	full := Event{ID: "evt_1", Type: "order.created", TenantID: "123", Collection: "posts", OccurredAt: occurredAt,
		Source: "/hookpost/shop/orders", Data: []byte(`{"a":1}`)}
	tests := []struct {
		name   string
		format Format
		ev     Event
		want   []Header
	}{
		{name: "structured formats carry everything in the body", format: FormatCloudEvents, ev: full},
		{name: "envelope", format: FormatEnvelope, ev: full},
		{
			name: "binary mode: every attribute of the structured body but data and datacontenttype", format: FormatCloudEventsBinary, ev: full,
			want: []Header{
				{Name: "ce-specversion", Value: "1.0"}, {Name: "ce-id", Value: "evt_1"}, {Name: "ce-source", Value: "/hookpost/shop/orders"},
				{Name: "ce-type", Value: "order.created"}, {Name: "ce-subject", Value: "posts"}, {Name: "ce-time", Value: "2025-11-16T10:30:00Z"},
				{Name: "ce-tenantid", Value: "123"},
			},
		},
		{
			name: "binary mode without optional attributes", format: FormatCloudEventsBinary,
			ev: Event{ID: "e", Type: "t", Source: "/s", OccurredAt: occurredAt},
			want: []Header{
				{Name: "ce-specversion", Value: "1.0"}, {Name: "ce-id", Value: "e"}, {Name: "ce-source", Value: "/s"},
				{Name: "ce-type", Value: "t"}, {Name: "ce-time", Value: "2025-11-16T10:30:00Z"},
			},
		},
		{
			// The HTTP binding percent-encodes space, '"', '%' and non-printable-ASCII bytes (UTF-8) in values.
			name: "binary mode percent-encodes values a header cannot carry", format: FormatCloudEventsBinary,
			ev: Event{ID: "a b", Type: `q"%`, TenantID: "t\u00e9\n", Collection: "~!", Source: "/s", OccurredAt: occurredAt},
			want: []Header{
				{Name: "ce-specversion", Value: "1.0"}, {Name: "ce-id", Value: "a%20b"}, {Name: "ce-source", Value: "/s"},
				{Name: "ce-type", Value: "q%22%25"}, {Name: "ce-subject", Value: "~!"}, {Name: "ce-time", Value: "2025-11-16T10:30:00Z"},
				{Name: "ce-tenantid", Value: "t%C3%A9%0A"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Headers(tt.format, tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("headers\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	if _, err := Headers(FormatCloudEventsBinary, Event{Type: "t", Source: "/s", OccurredAt: occurredAt}); err == nil {
		t.Error("binary headers of an event without an id: no error")
	}
}

// benchmarkData returns a JSON object of roughly size bytes shaped like a typical row: short keys,
// strings, integers and a few floats.
func benchmarkData(size int) []byte {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; b.Len() < size-64; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"field_%d":{"id":%d,"name":"item number %d","price":%d.99,"tags":["a","b"]}`, i, i*7919, i, i)
	}
	b.WriteString("}")
	return []byte(b.String())
}

func BenchmarkBuild(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		ev := Event{ID: "evt_1", Type: "order.created", TenantID: "123", OccurredAt: occurredAt, Data: benchmarkData(size)}
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(ev.Data)))
			for b.Loop() {
				if _, _, err := Build(FormatEnvelope, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
