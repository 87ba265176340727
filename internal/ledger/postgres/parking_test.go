package postgres_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/ledger/postgres"
)

// TestConcurrentParksAreAllKeptOnceInCallOrder: 300 matches parked at once, from as many goroutines (a failing
// endpoint's matches across the batches in flight), are all stored, once each even when parked twice, with every
// field as given (a row parked without a reason counts as parked past a cap); parks made one after another come
// back in the order they were made.
func TestConcurrentParksAreAllKeptOnceInCallOrder(t *testing.T) {
	w, _ := newWriter(t, postgres.Options{})
	p := w.Parking()
	ctx := testContext(t)
	sub := ledger.SubscriptionKey{Namespace: "shop", Name: "orders", UID: "uid-1"}
	at := time.Date(2026, 12, 4, 10, 0, 0, 123456000, time.UTC)
	parked := func(i int) ledger.Parked {
		d := ledger.Parked{Subscription: sub, EventID: fmt.Sprintf("ev-%03d", i), EventType: "order.created",
			OccurredAt: at.Add(time.Duration(i) * time.Millisecond), Data: []byte(fmt.Sprintf(`{"n": %d}`, i))}
		if i%2 == 0 {
			d.TenantID, d.Collection = "acme", "orders"
		}
		switch i % 3 {
		case 0:
			d.Reason, d.FirstAttempt = ledger.ParkedForEndpoint, fmt.Sprintf(`{"n":%d}`, i)
		case 1:
			d.Reason = ledger.ParkedPastCap
		}
		return d
	}

	// One after the other first: their order of arrival is known.
	for i := range 5 {
		if err := p.Park(ctx, parked(i)); err != nil {
			t.Fatalf("park %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 600)
	for i := 5; i < 300; i++ {
		for range 2 { // each twice: the second is a no-op
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- p.Park(ctx, parked(i))
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("park: %v", err)
		}
	}

	got, err := p.Oldest(ctx, sub, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 {
		t.Fatalf("%d parked deliveries, want 300 (each once)", len(got))
	}
	seen := map[string]bool{}
	for k, d := range got {
		if seen[d.EventID] {
			t.Fatalf("event %s parked twice", d.EventID)
		}
		seen[d.EventID] = true
		var i int
		if _, err := fmt.Sscanf(d.EventID, "ev-%03d", &i); err != nil {
			t.Fatal(err)
		}
		if k < 5 && i != k {
			t.Fatalf("parked deliveries %d comes back as event %s; want the sequential parks in the order they were made", k, d.EventID)
		}
		want := parked(i)
		want.Seq = d.Seq
		if want.Reason == "" {
			want.Reason = ledger.ParkedPastCap
		}
		if d.EventType != want.EventType || d.TenantID != want.TenantID || d.Collection != want.Collection ||
			!d.OccurredAt.Equal(want.OccurredAt) || !bytes.Equal(d.Data, want.Data) || d.Subscription != sub ||
			d.Reason != want.Reason || d.FirstAttempt != want.FirstAttempt {
			t.Fatalf("parked delivery %+v, want %+v", d, want)
		}
	}
	counts, err := p.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ledger.ParkedCount{All: 300, PastCap: 200}); counts[sub] != want {
		t.Fatalf("Counts = %v, want %+v for %v", counts, want, sub)
	}
}

// TestParkingTableOfAnEarlierVersionGainsReasons: a table of parked deliveries made before rows had a reason gets
// the new columns from the migration; its rows count as parked past a cap (they held new matches behind them when
// they were parked), and new rows keep theirs.
func TestParkingTableOfAnEarlierVersionGainsReasons(t *testing.T) {
	table := nextTable()
	conn := connect(t, sharedPostgres.DSN())
	ctx := testContext(t)
	if _, err := conn.Exec(ctx, `CREATE TABLE `+table+`_parked (
    seq bigserial PRIMARY KEY, parked_at timestamptz NOT NULL DEFAULT now(), namespace text NOT NULL,
    subscription text NOT NULL, subscription_uid text NOT NULL, event_id text NOT NULL, event_type text NOT NULL,
    tenant_id text, collection text, occurred_at timestamptz NOT NULL, data bytea,
    UNIQUE (namespace, subscription, subscription_uid, event_id));
INSERT INTO `+table+`_parked (namespace, subscription, subscription_uid, event_id, event_type, occurred_at)
VALUES ('shop', 'orders', 'uid-1', 'ev-old', 'order.created', now())`); err != nil {
		t.Fatal(err)
	}
	w, _ := newWriter(t, postgres.Options{Table: table}) // migrates
	p := w.Parking()
	sub := ledger.SubscriptionKey{Namespace: "shop", Name: "orders", UID: "uid-1"}
	if err := p.Park(ctx, ledger.Parked{Subscription: sub, Reason: ledger.ParkedForEndpoint, EventID: "ev-new",
		EventType: "order.created", OccurredAt: time.Now()}); err != nil {
		t.Fatalf("park into the migrated table: %v", err)
	}
	got, err := p.Oldest(ctx, sub, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].EventID != "ev-old" || got[0].Reason != ledger.ParkedPastCap || got[1].Reason != ledger.ParkedForEndpoint {
		t.Fatalf("parked after the migration: %+v, want ev-old past a cap, then ev-new for its endpoint", got)
	}
	counts, err := p.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ledger.ParkedCount{All: 2, PastCap: 1}); counts[sub] != want {
		t.Errorf("Counts = %+v, want %+v", counts[sub], want)
	}
}

// BenchmarkParkConcurrent: parks from 64 goroutines at once (a failing endpoint's matches across the batches in
// flight), which share INSERTs; ns/op is the time per park across them all.
func BenchmarkParkConcurrent(b *testing.B) {
	w, _ := newWriter(b, postgres.Options{})
	p := w.Parking()
	ctx := b.Context()
	sub := ledger.SubscriptionKey{Namespace: "bench", Name: "down", UID: "uid"}
	var n sync.Mutex
	next := 0
	b.SetParallelism(32) // 2 cores x 32 = 64 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			next++
			id := next
			n.Unlock()
			if err := p.Park(ctx, ledger.Parked{Subscription: sub, EventID: fmt.Sprintf("ev-%d", id), EventType: "order.created",
				OccurredAt: time.Now(), Data: []byte(`{}`)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
