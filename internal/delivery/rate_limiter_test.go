package delivery_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
)

var rateT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func limited(sub string, perSecond, burst int) delivery.Target {
	return delivery.Target{Namespace: "shop", Subscription: sub, Rate: delivery.RateLimit{PerSecond: perSecond, Burst: burst}}
}

// perSecondWindows counts the times in starts per whole second since rateT0, over seconds windows.
func perSecondWindows(starts []time.Time, seconds int) []int {
	n := make([]int, seconds)
	for _, at := range starts {
		if i := int(at.Sub(rateT0) / time.Second); i >= 0 && i < seconds {
			n[i]++
		}
	}
	return n
}

// TestTakeRateAdmitsTheLimitPerSecond offers far more attempts than the limit (simulated time, the injected now)
// and counts those admitted in each second: the limit +- 10 %, with a burst's extra only in the first second.
func TestTakeRateAdmitsTheLimitPerSecond(t *testing.T) {
	tests := []struct {
		name             string
		perSecond, burst int
		offerEvery       time.Duration
		seconds          int
		wantFirst        int // admitted in the first second, burst included
	}{
		{name: "10/s burst 1, offered 100/s for 10 s", perSecond: 10, burst: 1, offerEvery: 10 * time.Millisecond, seconds: 10, wantFirst: 10},
		{name: "10/s burst 5, offered 100/s for 10 s", perSecond: 10, burst: 5, offerEvery: 10 * time.Millisecond, seconds: 10, wantFirst: 14},
		{name: "10/s burst 1, offered 1000/s for 10 s", perSecond: 10, burst: 1, offerEvery: time.Millisecond, seconds: 10, wantFirst: 10},
		{name: "3/s burst 1 (an interval that does not divide a second), offered 100/s", perSecond: 3, burst: 1, offerEvery: 10 * time.Millisecond, seconds: 10, wantFirst: 3},
		{name: "1000/s burst 10, offered 10000/s for 5 s", perSecond: 1000, burst: 10, offerEvery: 100 * time.Microsecond, seconds: 5, wantFirst: 1009},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := delivery.NewSender(delivery.SenderOptions{})
			target := limited("orders", tt.perSecond, tt.burst)
			var starts []time.Time
			for now := rateT0; now.Before(rateT0.Add(time.Duration(tt.seconds) * time.Second)); now = now.Add(tt.offerEvery) {
				if s.TakeRate(target, now) {
					starts = append(starts, now)
				}
			}
			windows := perSecondWindows(starts, tt.seconds)
			if windows[0] < tt.wantFirst-1 || windows[0] > tt.wantFirst+1 {
				t.Errorf("first second admitted %d, want %d +- 1", windows[0], tt.wantFirst)
			}
			lo, hi := tt.perSecond*9/10, (tt.perSecond*11+9)/10
			for i, n := range windows[1:] {
				if n < lo || n > hi {
					t.Errorf("second %d admitted %d, want %d..%d (%d/s +- 10 %%); all windows %v", i+1, n, lo, hi, tt.perSecond, windows)
				}
			}
			total, want := len(starts), tt.perSecond*tt.seconds+tt.burst-1
			if total < want*9/10 || total > want*11/10 {
				t.Errorf("admitted %d in %d s, want %d +- 10 %%", total, tt.seconds, want)
			}
		})
	}
}

// TestReserveRateWakesABacklogAtTheLimitsPace models the delivery controller: a backlog of deliveries each books a
// start and comes back at it, while ingest keeps offering new events with TakeRate. The backlog starts at 10/s, in
// the order it booked, and ingest's events get no start while the backlog holds the bucket (it hands them on).
func TestReserveRateWakesABacklogAtTheLimitsPace(t *testing.T) {
	s := delivery.NewSender(delivery.SenderOptions{})
	target := limited("orders", 10, 1)
	const backlog = 100
	booked := make([]time.Time, backlog)
	for i := range booked {
		booked[i] = s.ReserveRate(target, rateT0)
	}
	for i := 1; i < backlog; i++ {
		if !booked[i].After(booked[i-1]) {
			t.Fatalf("booking %d at %v is not after booking %d at %v: waiters would come back together", i, booked[i], i-1, booked[i-1])
		}
	}
	taken := 0
	for now := rateT0; now.Before(rateT0.Add(10 * time.Second)); now = now.Add(10 * time.Millisecond) {
		if s.TakeRate(target, now) {
			taken++
		}
	}
	if taken != 0 {
		t.Errorf("ingest got %d starts while a backlog of %d held the bucket for 10 s, want 0", taken, backlog)
	}
	windows := perSecondWindows(booked, 10)
	for i, n := range windows {
		if n < 9 || n > 11 {
			t.Errorf("second %d: %d bookings start, want 10 +- 1; all windows %v", i, n, windows)
		}
	}
	if at := s.ReserveRate(target, rateT0.Add(20*time.Second)); !at.Equal(rateT0.Add(20 * time.Second)) {
		t.Errorf("a booking after the backlog drained starts at %v, want at once (%v)", at, rateT0.Add(20*time.Second))
	}
}

// TestRateLimitsAreKeptPerSubscription: one subscription's exhausted limit leaves the others' attempts alone.
func TestRateLimitsAreKeptPerSubscription(t *testing.T) {
	s := delivery.NewSender(delivery.SenderOptions{})
	slow := limited("slow", 1, 1)
	for i := range 50 {
		s.ReserveRate(slow, rateT0.Add(time.Duration(i)*time.Millisecond))
	}
	tests := []struct {
		name   string
		target delivery.Target
	}{
		{name: "an unlimited subscription", target: delivery.Target{Namespace: "shop", Subscription: "fast"}},
		{name: "another limited subscription", target: limited("other", 1, 1)},
		{name: "a subscription of the same name in another namespace", target: delivery.Target{Namespace: "billing", Subscription: "slow", Rate: slow.Rate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !s.TakeRate(tt.target, rateT0) {
				t.Error("TakeRate refused, want admitted: only shop/slow is over its limit")
			}
		})
	}
	if s.TakeRate(slow, rateT0.Add(time.Second)) {
		t.Error("TakeRate admitted shop/slow with 50 s of bookings ahead of it")
	}
}

func TestRateLimitEdges(t *testing.T) {
	tests := []struct {
		name  string
		run   func(s *delivery.Sender) bool
		wantS string
	}{
		{name: "no limit never books or waits", wantS: "admitted", run: func(s *delivery.Sender) bool {
			t := delivery.Target{Namespace: "shop", Subscription: "x"}
			for range 1000 {
				if !s.TakeRate(t, rateT0) || !s.ReserveRate(t, rateT0).Equal(rateT0) {
					return false
				}
			}
			return true
		}},
		{name: "a refused TakeRate books nothing", wantS: "admitted", run: func(s *delivery.Sender) bool {
			t := limited("x", 10, 1)
			s.TakeRate(t, rateT0)
			for range 100 {
				s.TakeRate(t, rateT0) // refused
			}
			return s.TakeRate(t, rateT0.Add(100*time.Millisecond))
		}},
		{name: "a changed limit applies at once", wantS: "admitted", run: func(s *delivery.Sender) bool {
			for range 20 {
				s.ReserveRate(limited("x", 1, 1), rateT0)
			}
			return s.TakeRate(limited("x", 100, 1), rateT0)
		}},
		{name: "a clock that steps back does not refill the bucket", wantS: "refused", run: func(s *delivery.Sender) bool {
			t := limited("x", 1, 1)
			s.TakeRate(t, rateT0)
			return s.TakeRate(t, rateT0.Add(-time.Hour))
		}},
		{name: "burst 0 means 1", wantS: "refused", run: func(s *delivery.Sender) bool {
			t := limited("x", 10, 0)
			s.TakeRate(t, rateT0)
			return s.TakeRate(t, rateT0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := "refused"
			if tt.run(delivery.NewSender(delivery.SenderOptions{})) {
				got = "admitted"
			}
			if got != tt.wantS {
				t.Errorf("last attempt %s, want %s", got, tt.wantS)
			}
		})
	}
}

// TestRateBucketsOfIdleSubscriptionsAreDropped: buckets full again are swept as new subscriptions come, so the
// limiter's memory follows the subscriptions active now, not every one ever limited.
func TestRateBucketsOfIdleSubscriptionsAreDropped(t *testing.T) {
	s := delivery.NewSender(delivery.SenderOptions{})
	for i := range 10000 {
		s.TakeRate(limited(fmt.Sprintf("sub-%d", i), 1, 1), rateT0.Add(time.Duration(i)*time.Millisecond))
	}
	// Each bucket is booked for one second after its attempt: only the last thousand or so can be busy.
	if n := s.RateBuckets(); n > 2100 {
		t.Errorf("%d buckets kept after 10000 subscriptions each made one attempt over 10 s, want at most about 2000", n)
	}
}
