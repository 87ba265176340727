package delivery_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
)

// One tenant's hanging endpoints, on as many hosts as there are global slots, must leave slots for everyone else.
func TestSendLeavesGlobalSlotsToOtherNamespacesWhileOneHangs(t *testing.T) {
	s := newSender(delivery.SenderOptions{MaxConcurrent: 4, MaxPerHost: 4, MaxPerNamespace: 2})
	var hanging []<-chan struct{}
	for range 4 {
		srv, arrived, _ := heldReceiver(t, 4)
		hanging = append(hanging, arrived)
		req := post(srv.URL)
		req.Namespace = "tenant-hanging"
		go s.Send(context.Background(), req, time.Minute, false, testNow)
	}
	// Two of the four reach their receivers and hang; the other two wait for their namespace, holding nothing.
	for arrivedCount := 0; arrivedCount < 2; {
		select {
		case <-hanging[0]:
		case <-hanging[1]:
		case <-hanging[2]:
		case <-hanging[3]:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d hanging attempts arrived, want 2", arrivedCount)
		}
		arrivedCount++
	}

	healthy := serve(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	req := post(healthy.URL)
	req.Namespace = "tenant-healthy"
	out, sent := s.TrySend(context.Background(), req, 5*time.Second, false, testNow)
	if !sent || out.StatusCode != http.StatusNoContent {
		t.Fatalf("a healthy namespace's attempt while another hangs: sent %v, outcome %+v; want it sent and answered", sent, out)
	}

	// The hanging namespace's next attempt is refused at once rather than queued behind its own hanging ones.
	again, _, _ := heldReceiver(t, 1)
	req = post(again.URL)
	req.Namespace = "tenant-hanging"
	if _, sent := s.TrySend(context.Background(), req, time.Minute, false, testNow); sent {
		t.Error("TrySend for a namespace holding all its slots was sent, want it refused so the worker moves on")
	}
}
