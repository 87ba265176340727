package ingest

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/source"
)

func TestAddSuccesses(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { v := metav1.NewTime(t0.Add(d)); return &v }
	tests := []struct {
		name string
		st   hookpostv1.WebhookSubscriptionStatus
		n    int64
		last time.Time
		want hookpostv1.WebhookSubscriptionStatus
	}{
		{
			name: "first successes",
			n:    5, last: t0,
			want: hookpostv1.WebhookSubscriptionStatus{Delivered: 5, DeliveredWithoutObject: 5, LastSuccessTime: at(0), LastDeliveryTime: at(0)},
		},
		{
			name: "a success after failures ends the streak",
			st:   hookpostv1.WebhookSubscriptionStatus{Delivered: 10, Failed: 2, LastFailureTime: at(-time.Minute), LastDeliveryTime: at(-time.Minute), ConsecutiveFailures: 3},
			n:    1, last: t0,
			want: hookpostv1.WebhookSubscriptionStatus{Delivered: 11, Failed: 2, DeliveredWithoutObject: 1, LastFailureTime: at(-time.Minute), LastSuccessTime: at(0), LastDeliveryTime: at(0)},
		},
		{
			name: "a failure newer than the successes keeps the streak",
			st:   hookpostv1.WebhookSubscriptionStatus{LastFailureTime: at(time.Minute), LastDeliveryTime: at(time.Minute), ConsecutiveFailures: 1},
			n:    2, last: t0,
			want: hookpostv1.WebhookSubscriptionStatus{Delivered: 2, DeliveredWithoutObject: 2, LastFailureTime: at(time.Minute), LastSuccessTime: at(0), LastDeliveryTime: at(time.Minute), ConsecutiveFailures: 1},
		},
		{
			name: "times never move backwards",
			st:   hookpostv1.WebhookSubscriptionStatus{LastSuccessTime: at(time.Hour), LastDeliveryTime: at(time.Hour)},
			n:    1, last: t0,
			want: hookpostv1.WebhookSubscriptionStatus{Delivered: 1, DeliveredWithoutObject: 1, LastSuccessTime: at(time.Hour), LastDeliveryTime: at(time.Hour)},
		},
		{
			name: "only objects written: the time moves, the count does not",
			n:    0, last: t0,
			want: hookpostv1.WebhookSubscriptionStatus{LastSuccessTime: at(0), LastDeliveryTime: at(0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st
			addSuccesses(&st, tt.n, tt.last)
			if st.Delivered != tt.want.Delivered || st.DeliveredWithoutObject != tt.want.DeliveredWithoutObject ||
				st.ConsecutiveFailures != tt.want.ConsecutiveFailures || !st.LastSuccessTime.Equal(tt.want.LastSuccessTime) ||
				!st.LastDeliveryTime.Equal(tt.want.LastDeliveryTime) || !st.LastFailureTime.Equal(tt.want.LastFailureTime) {
				t.Errorf("status = %+v\nwant     %+v", st, tt.want)
			}
		})
	}
}

func TestShareObjects(t *testing.T) {
	newest := func(n int) []success { return make([]success, n) }
	tests := []struct {
		name        string
		sizes       []int
		max         int
		wantKept    []int
		wantCounted []int64
	}{
		{name: "within the budget", sizes: []int{100, 50}, max: 1000, wantKept: []int{100, 50}, wantCounted: []int64{0, 0}},
		{name: "equal shares", sizes: []int{100, 100, 100, 100}, max: 100, wantKept: []int{25, 25, 25, 25}, wantCounted: []int64{75, 75, 75, 75}},
		{name: "a small one's unused share goes to the rest", sizes: []int{2, 100, 100}, max: 42, wantKept: []int{2, 20, 20}, wantCounted: []int64{0, 80, 80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pending := map[types.NamespacedName]*successes{}
			var order []*successes
			for i, n := range tt.sizes {
				s := &successes{newest: newest(n)}
				s.ring, s.newest = s.newest, nil
				s.takeNewest()
				pending[types.NamespacedName{Name: string(rune('a' + i))}] = s
				order = append(order, s)
			}
			shareObjects(pending, tt.max)
			for i, s := range order {
				if len(s.newest) != tt.wantKept[i] || s.counted != tt.wantCounted[i] {
					t.Errorf("subscription %d: kept %d counted %d, want %d and %d", i, len(s.newest), s.counted, tt.wantKept[i], tt.wantCounted[i])
				}
			}
		})
	}
}

func TestSuccessesKeepTheNewest(t *testing.T) {
	var s successes
	for i := range 7 {
		s.add(success{ev: source.Event{ID: fmt.Sprint(i)}}, 3)
	}
	s.takeNewest()
	var ids []string
	for _, sc := range s.newest {
		ids = append(ids, sc.ev.ID)
	}
	if fmt.Sprint(ids) != "[4 5 6]" || s.counted != 4 {
		t.Fatalf("kept %v and counted %d, want [4 5 6] oldest first and 4 counted", ids, s.counted)
	}
	var none successes
	none.add(success{}, 0)
	if none.takeNewest(); len(none.newest) != 0 || none.counted != 1 {
		t.Fatalf("with no room, kept %d and counted %d", len(none.newest), none.counted)
	}
}
