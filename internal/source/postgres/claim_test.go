package postgres

import (
	"slices"
	"strings"
	"testing"

	"github.com/hookpost/hookpost/internal/source"
)

func TestSortOutKeepsOrderAndSetsMalformedRowsAside(t *testing.T) {
	text := func(s string) *string { return &s }
	row := func(id int64, eventType, payload string) claimedRow {
		return claimedRow{id: id, event: source.Event{ID: "e" + eventType}, eventType: text(eventType), payloadSize: len(payload), payload: text(payload)}
	}
	oversize := claimedRow{id: 4, event: source.Event{ID: "big"}, eventType: text("order.created"), payloadSize: 101}
	nullType := claimedRow{id: 6, event: source.Event{ID: "null"}, payloadSize: 2, payload: text(`{}`)}
	tests := []struct {
		name         string
		rows         []claimedRow
		wantAccepted []int64
		wantRejected map[int64]string // id -> reason prefix
	}{
		{name: "nothing claimed"},
		{
			name:         "all deliverable",
			rows:         []claimedRow{row(1, "a", `{}`), row(2, "b", `{"x": 1}`)},
			wantAccepted: []int64{1, 2},
		},
		{
			name:         "malformed rows between good ones",
			rows:         []claimedRow{row(1, "", `{}`), row(2, "a", `{}`), row(3, "b", `[1]`), oversize, row(5, "c", `{}`), nullType},
			wantAccepted: []int64{2, 5},
			wantRejected: map[int64]string{1: "event_type: ", 3: "payload: ", 4: "payload: ", 6: "event_type: is NULL"},
		},
		{
			// docs/receivers.md quotes this reason: such a number is set aside, not sent as null.
			name:         "a number beyond a double",
			rows:         []claimedRow{row(1, "a", `{"n": 1e400}`), row(2, "b", `{"n": 1.7e308}`)},
			wantAccepted: []int64{2},
			wantRejected: map[int64]string{1: "payload: payload holds the number 1e400, beyond the range of a double (about 1.8e308): send it as a string"},
		},
		{
			name:         "only malformed rows",
			rows:         []claimedRow{row(7, "order created", `{}`)},
			wantRejected: map[int64]string{7: "event_type: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			accepted, rejected := sortOut(tt.rows, 100)
			var gotIDs []int64
			for _, a := range accepted {
				gotIDs = append(gotIDs, a.id)
				if a.event.Data == nil {
					t.Errorf("accepted row %d has no data", a.id)
				}
			}
			if !slices.Equal(gotIDs, tt.wantAccepted) {
				t.Fatalf("accepted %v, want %v", gotIDs, tt.wantAccepted)
			}
			if len(rejected) != len(tt.wantRejected) {
				t.Fatalf("rejected %+v, want ids %v", rejected, tt.wantRejected)
			}
			last := int64(0)
			for _, r := range rejected {
				prefix, ok := tt.wantRejected[r.id]
				if !ok || !strings.HasPrefix(r.rejection.Reason, prefix) || r.rejection.Source != Name || r.id <= last {
					t.Errorf("rejected row %d: %+v, want reason prefix %q, in id order", r.id, r.rejection, prefix)
				}
				last = r.id
			}
		})
	}
}
