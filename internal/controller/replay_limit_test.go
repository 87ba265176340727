package controller

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestReplayLimiter(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sub := types.NamespacedName{Namespace: "shop", Name: "orders"}
	other := types.NamespacedName{Namespace: "shop", Name: "refunds"}
	l := newReplayLimiter(ReplayLimits{Interval: 10 * time.Second, PerMinute: 6, Burst: 2})
	steps := []struct {
		name string
		uid  types.UID
		sub  types.NamespacedName
		at   time.Duration
		want time.Duration
	}{
		{"first replay of a delivery goes", "a", sub, 0, 0},
		{"the same delivery again within the interval waits for it", "a", sub, 3 * time.Second, 7 * time.Second},
		{"another delivery takes the second token of the burst", "b", sub, 3 * time.Second, 0},
		{"a third delivery waits for a token (6/min: one per 10s; 0.4 left)", "c", sub, 4 * time.Second, 6 * time.Second},
		{"another subscription has its own bucket", "d", other, 4 * time.Second, 0},
		{"the interval passed and a token refilled", "a", sub, 10 * time.Second, 0},
		{"the wait is the longer of the two limits", "b", sub, 12 * time.Second, 8 * time.Second},
		{"the deferred delivery goes once a token is back", "c", sub, 20 * time.Second, 0},
	}
	for _, s := range steps {
		if got := l.reserve(s.uid, s.sub, t0.Add(s.at)); got != s.want {
			t.Errorf("%s: wait %v, want %v", s.name, got, s.want)
		}
	}
}
