package postgres_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/ledger/postgres"
)

func pruned(name, sub, phase, reason, tenant string, occurred time.Time) ledger.Pruned {
	return ledger.Pruned{Namespace: "shop", Subscription: sub, DeliveryName: name, EventID: "evt-" + name, EventType: "order.created",
		TenantID: tenant, OccurredAt: occurred, Data: []byte(`{"name":"` + name + `"}`), Phase: phase, Reason: reason, Created: occurred.Add(time.Second)}
}

// TestPrunedDeliveriesAreKeptSelectedAndExpire: what KeepPruned wrote comes back whole, oldest event first, for
// the selections a WebhookReplay makes; a delivery pruned again replaces its row; the ledger's retention removes
// them.
func TestPrunedDeliveriesAreKeptSelectedAndExpire(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	w, _ := newWriter(t, postgres.Options{Retention: 24 * time.Hour, Now: clock.Now})
	ctx := testContext(t)
	store := w.Pruned()
	at := time.Date(2025, 11, 16, 10, 0, 0, 0, time.UTC)
	if err := store.KeepPruned(ctx, []ledger.Pruned{
		pruned("c", "orders", "Failed", "RetriesExhausted", "7", at.Add(2*time.Minute)),
		pruned("a", "orders", "Failed", "Rejected", "", at),
		pruned("b", "users", "Succeeded", "Succeeded", "7", at.Add(time.Minute)),
	}); err != nil {
		t.Fatal(err)
	}
	again := pruned("a", "orders", "Failed", "Gone", "", at)
	again.Data = nil
	if err := store.KeepPruned(ctx, []ledger.Pruned{again}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		query ledger.PrunedQuery
		want  string
	}{
		{name: "the namespace, oldest event first", query: ledger.PrunedQuery{Namespace: "shop"}, want: "[a b c]"},
		{name: "another namespace", query: ledger.PrunedQuery{Namespace: "other"}, want: "[]"},
		{name: "a subscription", query: ledger.PrunedQuery{Namespace: "shop", Subscription: "orders"}, want: "[a c]"},
		{name: "a phase", query: ledger.PrunedQuery{Namespace: "shop", Phases: []string{"Succeeded"}}, want: "[b]"},
		{name: "reasons (a's replaced)", query: ledger.PrunedQuery{Namespace: "shop", Reasons: []string{"Gone", "RetriesExhausted"}}, want: "[a c]"},
		{name: "a tenant", query: ledger.PrunedQuery{Namespace: "shop", Tenants: []string{"7"}}, want: "[b c]"},
		{name: "an event type", query: ledger.PrunedQuery{Namespace: "shop", EventTypes: []string{"user.registered"}}, want: "[]"},
		{name: "an event time range", query: ledger.PrunedQuery{Namespace: "shop", From: at.Add(time.Minute), To: at.Add(2 * time.Minute)}, want: "[b]"},
		{name: "created before", query: ledger.PrunedQuery{Namespace: "shop", CreatedBefore: at.Add(61 * time.Second)}, want: "[a b]"},
		{name: "a limit keeps the oldest", query: ledger.PrunedQuery{Namespace: "shop", Limit: 2}, want: "[a b]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.Pruned(ctx, tc.query)
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, p := range got {
				names = append(names, p.DeliveryName)
			}
			if fmt.Sprint(names) != tc.want {
				t.Errorf("selected %v, want %v", names, tc.want)
			}
		})
	}

	got, err := store.Pruned(ctx, ledger.PrunedQuery{Namespace: "shop", Subscription: "users"})
	if err != nil || len(got) != 1 {
		t.Fatalf("got %+v (%v)", got, err)
	}
	if want := pruned("b", "users", "Succeeded", "Succeeded", "7", at.Add(time.Minute)); got[0].EventID != want.EventID || got[0].TenantID != "7" ||
		!got[0].OccurredAt.Equal(want.OccurredAt) || !got[0].Created.Equal(want.Created) || !bytes.Equal(got[0].Data, want.Data) {
		t.Errorf("read back %+v, want %+v", got[0], want)
	}

	clock.mu.Lock()
	clock.now = clock.now.Add(25 * time.Hour)
	clock.mu.Unlock()
	if n, err := w.PurgeExpired(ctx); err != nil || n != 3 {
		t.Fatalf("purge deleted %d (%v), want the 3 pruned deliveries kept longer than the retention", n, err)
	}
}

// BenchmarkKeepPruned is what keeping a pruned delivery (1 KiB of data) costs the subscription controller before
// the delete, per delivery, written in batches of 100 as a reconcile prunes them.
func BenchmarkKeepPruned(b *testing.B) {
	w, _ := newWriter(b, postgres.Options{})
	ctx := testContext(b)
	store := w.Pruned()
	data := bytes.Repeat([]byte("x"), 1000)
	batch := make([]ledger.Pruned, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		for k := range batch {
			p := pruned(fmt.Sprintf("d-%d", i+k), "orders", "Failed", "RetriesExhausted", "", time.Now())
			p.Data = append(append([]byte(`{"x":"`), data...), `"}`...)
			batch[k] = p
		}
		if err := store.KeepPruned(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}
