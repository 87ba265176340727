package postgres

import (
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/source"
)

// FuzzDecodeRow feeds decodeRow any values an outbox row can hold and checks the promise the claim relies on:
// no panic, and either an event that passes source.ValidateEvent (so ingest and the API server take it) or a
// non-empty reason to set the row aside with. A row that is neither would stop or poison ingest.
func FuzzDecodeRow(f *testing.F) {
	f.Add("0190b2c4-7e1a-7c3e-9d2f-4b5a6c7d8e9f", "order.created", true, "123", "orders", int64(1763289000), false,
		`{"order_id": "ord_8f3c", "total": {"amount": 129.95, "currency": "EUR"}}`, false, 0)
	f.Add("0190b2c4-7e1a-7c3e-9d2f-4b5a6c7d8e9f", "", true, "", "", int64(0), true, `{}`, false, 0)
	f.Add("e", "user registered", true, "\x1b[31mred", "posts\r", int64(-62135596800), false, `[1]`, false, 16)
	f.Add("e", "order.created", false, "", "", int64(0), false, `{"a": 1e400}`, false, 0)
	f.Add("e", "order.created", true, "", "", int64(0), false, `{"a": "x"}`, true, 10)
	f.Add("e", "a.b", true, "t", "c", int64(253402300799), false, `{"deep": [[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]}`, false, 0)
	f.Add("e", "a.b", true, "t", "c", int64(1), false, "{\"\xff\": \"\\ud800\"}", false, 64)
	f.Fuzz(func(t *testing.T, eventID, eventType string, typeNotNull bool, tenant, collection string, unix int64,
		infinite bool, payload string, oversize bool, maxPayloadBytes int) {
		r := claimedRow{id: 1, event: source.Event{ID: eventID, TenantID: tenant, Collection: collection,
			OccurredAt: time.Unix(unix, 0)}, occurredAtInfinite: infinite, payloadSize: len(payload)}
		if typeNotNull {
			r.eventType = &eventType
		}
		// The claim leaves the payload out (NULL) when it is over the limit, as octet_length says.
		if !oversize {
			r.payload = &payload
		}
		ev, reason := decodeRow(r, maxPayloadBytes)
		if ev.ID != eventID {
			t.Fatalf("event id %q, want %q: the rejection must name the row", ev.ID, eventID)
		}
		if reason != "" {
			return
		}
		if why := source.ValidateEvent(ev, maxPayloadBytes); why != "" {
			t.Fatalf("decodeRow accepted a row ValidateEvent refuses (%s): %+v", why, ev)
		}
		if infinite || oversize || !typeNotNull {
			t.Fatalf("decodeRow accepted a row with infinite=%v oversize=%v typeNotNull=%v", infinite, oversize, typeNotNull)
		}
		if ev.Type != eventType || ev.TenantID != tenant || ev.Collection != collection || string(ev.Data) != payload ||
			!ev.OccurredAt.Equal(time.Unix(unix, 0)) {
			t.Fatalf("decodeRow changed the row's values: %+v", ev)
		}
	})
}
