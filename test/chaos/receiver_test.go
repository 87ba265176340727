package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hookpost/hookpost/internal/delivery"
)

// TestPlanEndsInSuccessWithinTheSchedule checks the receiver's promise that makes "lost" mean lost: every event
// fails fewer times than the subscription allows attempts, then gets 2xx on every request; the choice repeats
// for the same seed and every kind of failure occurs.
func TestPlanEndsInSuccessWithinTheSchedule(t *testing.T) {
	seen := map[fault]int{}
	for i := range 10000 {
		id := fmt.Sprintf("evt-%d", i)
		failures := 0
		for n := range 10 {
			f := plan(42, id, n)
			if f != plan(42, id, n) {
				t.Fatalf("plan(42, %s, %d) answered differently twice", id, n)
			}
			seen[f]++
			if f != answerOK {
				if failures != n {
					t.Fatalf("event %s: request %d fails after a 2xx", id, n)
				}
				failures++
			}
		}
		if failures > len(retrySchedule) {
			t.Fatalf("event %s fails %d times; the subscription makes only %d attempts", id, failures, len(retrySchedule)+1)
		}
	}
	for f := answerOK; f < faultKinds; f++ {
		if seen[f] == 0 {
			t.Errorf("no request answered %s", faultNames[f])
		}
	}
}

// TestReceiverCountsLostAndDuplicates sends real requests over loopback and checks the figures the verdict rests
// on: an event retried through its failures until 2xx is delivered, one sent again after that is a duplicate POST,
// one never sent is lost, and a lost event fails the run.
func TestReceiverCountsLostAndDuplicates(t *testing.T) {
	// No hang: a timeout answer is then a plain 504, so nothing here depends on how fast the machine is.
	recv := newReceiver(42, 0)
	defer recv.Close()
	hc := &http.Client{}
	post := func(id string) bool {
		req, _ := http.NewRequest(http.MethodPost, recv.URL+"/hooks", strings.NewReader(`{}`))
		req.Header.Set(delivery.HeaderEventID, id)
		resp, err := hc.Do(req)
		if err != nil {
			return false // a reset
		}
		defer resp.Body.Close()
		return resp.StatusCode/100 == 2
	}
	published := []string{"a", "b", "c", "never-sent"}
	for _, id := range published[:3] {
		for attempt := 0; !post(id); attempt++ {
			if attempt > len(retrySchedule) {
				t.Fatalf("event %s got no 2xx in %d attempts", id, attempt+1)
			}
		}
	}
	post("a")
	post("not-published")

	r := result{published: len(published), receipts: recv.receipts(published)}
	if r.delivered != 3 || len(r.lost) != 1 || r.lost[0] != "never-sent" {
		t.Errorf("delivered %d, lost %v; want 3 delivered and never-sent lost", r.delivered, r.lost)
	}
	if r.dupEvents != 1 || r.dupPOSTs != 1 {
		t.Errorf("%d duplicate POSTs for %d events; want 1 for 1 (event a sent again after its 2xx)", r.dupPOSTs, r.dupEvents)
	}
	if r.unexpected != 1 {
		t.Errorf("%d event ids never published; want 1", r.unexpected)
	}
	if r.passed() {
		t.Errorf("a run that lost an event passed")
	}
	r.lost = nil
	if !r.passed() {
		t.Errorf("a run with nothing lost and no duplicate object failed")
	}
}
