package nats

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookpost/hookpost/internal/source"
)

// FuzzDecodeMessage feeds decodeMessage any subject, headers and body a publisher can send and checks the
// promise Next relies on: no panic, and either an event that passes source.ValidateEvent (so ingest and the
// API server take it) or a non-empty reason to terminate the message with.
func FuzzDecodeMessage(f *testing.F) {
	f.Add("hookpost.events.order.created", "0190b2c4-7e1a-7c3e-9d2f-4b5a6c7d8e9f", "123", "orders",
		"2025-11-16T10:30:00Z", []byte(`{"order_id": "ord_8f3c", "total": 129.95}`), uint64(42), 0)
	f.Add("hookpost.events.", "", "", "", "", []byte(`{}`), uint64(1), 0)
	f.Add("other.order.created", "id", "", "", "", []byte(`{}`), uint64(1), 0)
	f.Add("hookpost.events.order created", "id\x00\x1b[2J", "\x1b]0;title\x07", "posts\n", "yesterday", []byte(`[1]`), uint64(7), 16)
	f.Add("hookpost.events.a.b", "", "", "", "2025-11-16T10:30:00.123456789+01:00", []byte(`{"a": 1e400}`), uint64(0), 0)
	f.Add("hookpost.events.a.b", "x", "t", "c", "", []byte("{\"\xff\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"), uint64(3), 64)
	f.Fuzz(func(t *testing.T, subject, msgID, tenant, collection, occurredAt string, body []byte, seq uint64, maxPayloadBytes int) {
		h := nats.Header{}
		for name, v := range map[string]string{HeaderMsgID: msgID, HeaderTenantID: tenant, HeaderCollection: collection, HeaderOccurredAt: occurredAt} {
			if v != "" {
				h.Set(name, v)
			}
		}
		published := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		ev, reason := decodeMessage(message{subject: subject, headers: h, data: body, stream: DefaultStream,
			sequence: seq, published: published}, DefaultSubjectPrefix, maxPayloadBytes)
		if ev.ID == "" {
			t.Fatal("no event id: the rejection must name the message")
		}
		if reason != "" {
			return
		}
		if why := source.ValidateEvent(ev, maxPayloadBytes); why != "" {
			t.Fatalf("decodeMessage accepted a message ValidateEvent refuses (%s): %+v", why, ev)
		}
		if DefaultSubjectPrefix+ev.Type != subject || ev.TenantID != tenant || ev.Collection != collection || string(ev.Data) != string(body) {
			t.Fatalf("decodeMessage changed the message's values: %+v", ev)
		}
		if msgID != "" && ev.ID != msgID {
			t.Fatalf("event id %q, want the %s header %q", ev.ID, HeaderMsgID, msgID)
		}
	})
}
