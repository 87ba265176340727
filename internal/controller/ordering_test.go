package controller

import (
	"errors"
	"strings"
	"testing"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

func TestDecideOrder(t *testing.T) {
	own := &hookpostv1.DeliveryOrdering{Key: "o-1", Source: "postgres", Position: 10}
	peer := func(name string, position int64, phase hookpostv1.DeliveryPhase) orderingPeer {
		return orderingPeer{name: name, source: "postgres", position: position, phase: phase}
	}
	for _, tc := range []struct {
		name   string
		passed bool
		// uncached says the cache has not yet applied every delivery created before the watermark reading.
		uncached     bool
		watermarkErr error
		peers        []orderingPeer
		block        bool
		// wantReason is "" when the delivery may go; wantMessage is a part of the message.
		wantReason, wantMessage string
		// wantWatermark says whether the watermark is read: not while a predecessor holds the delivery.
		wantWatermark bool
	}{
		{name: "the head of its key goes", passed: true, wantWatermark: true},
		{name: "every earlier one finished", passed: true, wantWatermark: true,
			peers: []orderingPeer{peer("a", 3, hookpostv1.DeliverySucceeded), peer("b", 7, hookpostv1.DeliverySucceeded)}},
		{name: "the head waits for the watermark: an earlier event may lack its delivery yet", passed: false, wantWatermark: true,
			wantReason: hookpostv1.ReasonWaitingForSource, wantMessage: "until source postgres has acknowledged every event before position 10"},
		{name: "the watermark passed, but the cache may still lack an earlier delivery of the key", passed: true, uncached: true, wantWatermark: true,
			wantReason: hookpostv1.ReasonWaitingForSource, wantMessage: "until the operator's cache holds every delivery created before source postgres acknowledged position 10 (resource version 42)"},
		{name: "the watermark cannot be read", watermarkErr: errors.New(`source "nats" is not configured on this operator`), wantWatermark: true,
			wantReason: hookpostv1.ReasonWaitingForSource, wantMessage: `source "nats" is not configured`},
		{name: "a predecessor holds it whatever the watermark", passed: false, peers: []orderingPeer{peer("a", 3, hookpostv1.DeliveryRetrying)},
			wantReason: hookpostv1.ReasonWaitingForPredecessor},
		{name: "a pending predecessor holds it", passed: true, peers: []orderingPeer{peer("a", 3, hookpostv1.DeliveryPending)},
			wantReason: hookpostv1.ReasonWaitingForPredecessor, wantMessage: `waiting for a, the delivery before it of ordering key "o-1", to finish`},
		{name: "a retrying predecessor holds it; the nearest is named", passed: true,
			peers:      []orderingPeer{peer("a", 3, hookpostv1.DeliveryRetrying), peer("b", 7, hookpostv1.DeliveryPending), peer("c", 5, hookpostv1.DeliveryRetrying)},
			wantReason: hookpostv1.ReasonWaitingForPredecessor, wantMessage: "waiting for b,"},
		{name: "later deliveries do not hold it", passed: true, wantWatermark: true,
			peers: []orderingPeer{peer("later", 11, hookpostv1.DeliveryRetrying), peer("much-later", 99, hookpostv1.DeliveryPending)}},
		{name: "Skip: a failed predecessor does not hold it", passed: true, wantWatermark: true,
			peers: []orderingPeer{peer("a", 3, hookpostv1.DeliveryFailed)}},
		{name: "Block: a failed predecessor holds it, and says how to let it go", passed: true, block: true,
			peers:      []orderingPeer{peer("a", 3, hookpostv1.DeliveryFailed), peer("b", 5, hookpostv1.DeliverySucceeded)},
			wantReason: hookpostv1.ReasonWaitingForPredecessor, wantMessage: "it failed and spec.ordering.onExhausted is Block; replay it"},
		{name: "another source's deliveries are ordered among themselves", passed: true, wantWatermark: true,
			peers: []orderingPeer{{name: "n", source: "nats", position: 2, phase: hookpostv1.DeliveryPending}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read := false
			got := decideOrder(own, tc.peers, tc.block, func() (bool, uint64, bool, error) {
				read = true
				return tc.passed, 42, tc.passed && !tc.uncached && tc.watermarkErr == nil, tc.watermarkErr
			})
			if got.reason != tc.wantReason || !strings.Contains(got.message, tc.wantMessage) {
				t.Fatalf("decideOrder = %+v, want reason %q with a message containing %q", got, tc.wantReason, tc.wantMessage)
			}
			if got.Go() != (tc.wantReason == "") {
				t.Fatalf("Go() = %v with reason %q", got.Go(), got.reason)
			}
			if read != tc.wantWatermark {
				t.Fatalf("watermark read = %v, want %v", read, tc.wantWatermark)
			}
			if !got.Go() && got.recheck <= 0 {
				t.Fatalf("a wait without a recheck: %+v", got)
			}
		})
	}
}
