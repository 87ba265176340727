package ingest

import (
	"context"
	"testing"
)

// A batch gives up its place among the batches in flight once every match is dispatched and all it still waits
// for is HTTP attempts in flight; anything else it waits for (a dispatch still preparing, late work writing an
// object, matches not yet dispatched) keeps the place, so a busy API server still holds new batches back.
func TestBatchPlaceIsGivenUpWhenOnlyAttemptsRemain(t *testing.T) {
	tests := []struct {
		name string
		// dispatches and late work are begun, then attempts of the dispatches start an HTTP attempt.
		dispatches, attempts, late int
		allDispatched              bool
		wantDetached               bool
	}{
		{name: "every unfinished dispatch in an attempt", dispatches: 3, attempts: 3, allDispatched: true, wantDetached: true},
		{name: "one dispatch not in an attempt", dispatches: 3, attempts: 2, allDispatched: true},
		{name: "matches still to dispatch", dispatches: 3, attempts: 3},
		{name: "late work outstanding", dispatches: 2, attempts: 2, late: 1, allDispatched: true},
		{name: "nothing unfinished", allDispatched: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			detached := 0
			p := &batchPlace{detach: func() { detached++ }}
			ctx := context.WithValue(context.Background(), batchPlaceKey{}, p)
			for range tt.dispatches + tt.late {
				p.begin()
			}
			var ends []func()
			for range tt.attempts {
				ends = append(ends, attemptInFlight(ctx))
			}
			if tt.allDispatched {
				p.allDispatched()
			}
			if got := detached > 0; got != tt.wantDetached {
				t.Errorf("detached %v, want %v", got, tt.wantDetached)
			}
			for _, end := range ends {
				end()
			}
		})
	}
}

// An attempt that ends gives its dispatch back to the batch: a batch whose last non-attempt dispatch finishes
// while others are in attempts detaches then.
func TestBatchPlaceIsGivenUpWhenTheLastOtherDispatchEnds(t *testing.T) {
	detached := 0
	p := &batchPlace{detach: func() { detached++ }}
	ctx := context.WithValue(context.Background(), batchPlaceKey{}, p)
	p.begin() // a healthy match, answered quickly
	p.begin() // a hanging endpoint's match
	end := attemptInFlight(ctx)
	defer end()
	p.allDispatched()
	if detached != 0 {
		t.Fatalf("detached while a dispatch outside an attempt is unfinished")
	}
	p.end() // the healthy match is done
	if detached == 0 {
		t.Errorf("not detached once all that remains is an attempt in flight")
	}
}
