package delivery

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func streakPolicy() BreakerPolicy {
	return BreakerPolicy{ConsecutiveFailures: 3, OpenFor: 30 * time.Second, MaxOpenFor: 2 * time.Minute}
}

// fail records n failed attempts of key, one a second from start, each admitted first; it returns the time after.
func fail(t *testing.T, b *Breakers, key string, p BreakerPolicy, n int, start time.Time) time.Time {
	t.Helper()
	now := start
	for range n {
		a := b.Allow(key, p, now)
		if !a.OK {
			t.Fatalf("attempt at %s refused while the circuit should be closed", now.Sub(t0))
		}
		b.Record(key, p, a, ClassRetry, now)
		now = now.Add(time.Second)
	}
	return now
}

func TestBreakerOpensAfterConsecutiveFailuresOnly(t *testing.T) {
	p := streakPolicy()
	tests := []struct {
		name     string
		classes  []Class
		wantOpen bool
	}{
		{name: "three failures in a row", classes: []Class{ClassRetry, ClassRetry, ClassRetry}, wantOpen: true},
		{name: "a success breaks the streak", classes: []Class{ClassRetry, ClassRetry, ClassSucceeded, ClassRetry, ClassRetry}, wantOpen: false},
		{name: "rejections say nothing of the endpoint's health", classes: []Class{ClassRetry, ClassPermanent, ClassGone, ClassRetry, ClassRetry}, wantOpen: true},
		{name: "TLS failures count like any other failure to reach the endpoint", classes: []Class{ClassTLS, ClassRetry, ClassTLS}, wantOpen: true},
		{name: "rejections alone never open it", classes: []Class{ClassPermanent, ClassPermanent, ClassPermanent, ClassPermanent}, wantOpen: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBreakers()
			now := t0
			for _, c := range tc.classes {
				b.Record("ns/sub", p, b.Allow("ns/sub", p, now), c, now)
				now = now.Add(time.Second)
			}
			got := b.State("ns/sub", now)
			if (got.State == CircuitOpen) != tc.wantOpen {
				t.Fatalf("state %s, want open %v", got.State, tc.wantOpen)
			}
			if a := b.Allow("ns/sub", p, now); a.OK == tc.wantOpen {
				t.Fatalf("Allow = %+v with open %v", a, tc.wantOpen)
			}
		})
	}
}

func TestBreakerOpenCircuitWaitsThenProbesOnce(t *testing.T) {
	p := streakPolicy()
	b := NewBreakers()
	now := fail(t, b, "ns/sub", p, 3, t0)
	opened := now.Add(-time.Second)
	st := b.State("ns/sub", now)
	if st.State != CircuitOpen || !st.Until.Equal(opened.Add(30*time.Second)) || st.Reason != "3 consecutive failed attempts" {
		t.Fatalf("state after 3 failures = %+v", st)
	}
	if a := b.Allow("ns/sub", p, now); a.OK || !a.RetryAt.Equal(st.Until) {
		t.Fatalf("open circuit admitted %+v, want a wait until %s", a, st.Until)
	}
	// Another subscription is not affected.
	if a := b.Allow("ns/other", p, now); !a.OK {
		t.Fatalf("another subscription was held: %+v", a)
	}
	probe := b.Allow("ns/sub", p, st.Until)
	if !probe.OK || !probe.Probe {
		t.Fatalf("no probe once the open period ended: %+v", probe)
	}
	if a := b.Allow("ns/sub", p, st.Until.Add(time.Second)); a.OK {
		t.Fatalf("a second attempt went out beside the probe: %+v", a)
	}
	// The probe fails: open again for twice as long.
	b.Record("ns/sub", p, probe, ClassRetry, st.Until.Add(2*time.Second))
	st2 := b.State("ns/sub", st.Until.Add(2*time.Second))
	if st2.State != CircuitOpen || st2.Until.Sub(st.Until.Add(2*time.Second)) != time.Minute || !st2.Since.Equal(st.Since) {
		t.Fatalf("after a failed probe = %+v, want open for 1m since %s", st2, st.Since)
	}
	// Doubling stops at MaxOpenFor.
	var periods []time.Duration
	for range 3 {
		failedAt := st2.Until
		probe = b.Allow("ns/sub", p, failedAt)
		b.Record("ns/sub", p, probe, ClassRetry, failedAt)
		st2 = b.State("ns/sub", failedAt)
		periods = append(periods, st2.Until.Sub(failedAt))
	}
	if want := []time.Duration{2 * time.Minute, 2 * time.Minute, 2 * time.Minute}; !slices.Equal(periods, want) {
		t.Fatalf("open periods after failed probes = %v, want %v (MaxOpenFor)", periods, want)
	}
	// A probe that succeeds closes the circuit and says so.
	probe = b.Allow("ns/sub", p, st2.Until)
	drainChanged(b)
	b.Record("ns/sub", p, probe, ClassSucceeded, st2.Until)
	if st := b.State("ns/sub", st2.Until); st.State != CircuitClosed {
		t.Fatalf("after a successful probe = %+v", st)
	}
	if keys := drainChanged(b); len(keys) != 1 || keys[0] != "ns/sub" {
		t.Fatalf("Changed after the close = %v", keys)
	}
}

func drainChanged(b *Breakers) []string {
	var keys []string
	for {
		select {
		case k := <-b.Changed():
			keys = append(keys, k)
		default:
			return keys
		}
	}
}

func TestBreakerProbeNotSentOrLostIsGivenBack(t *testing.T) {
	p := streakPolicy()
	b := NewBreakers()
	now := fail(t, b, "ns/sub", p, 3, t0)
	until := b.State("ns/sub", now).Until
	probe := b.Allow("ns/sub", p, until)
	b.Unused("ns/sub", probe)
	if again := b.Allow("ns/sub", p, until); !again.Probe {
		t.Fatalf("a probe given back was not granted again: %+v", again)
	}
	// A probe whose outcome never comes (its process stopped) is replaced after the lease.
	if a := b.Allow("ns/sub", p, until.Add(probeLease)); !a.OK || !a.Probe {
		t.Fatalf("no new probe after the lease: %+v", a)
	}
}

func TestBreakerAttemptsInFlightWhenItOpenedDoNotExtendIt(t *testing.T) {
	p := streakPolicy()
	b := NewBreakers()
	now := fail(t, b, "ns/sub", p, 3, t0)
	until := b.State("ns/sub", now).Until
	b.Record("ns/sub", p, Admission{OK: true}, ClassRetry, now)
	b.Record("ns/sub", p, Admission{OK: true}, ClassSucceeded, now)
	if st := b.State("ns/sub", now); st.State != CircuitOpen || !st.Until.Equal(until) {
		t.Fatalf("late outcomes changed the open circuit: %+v", st)
	}
}

func TestBreakerFailureRate(t *testing.T) {
	p := BreakerPolicy{FailureRatePercent: 50, Window: time.Minute, MinAttempts: 10, OpenFor: 30 * time.Second, MaxOpenFor: time.Minute}
	tests := []struct {
		name     string
		pattern  string // one attempt a second: F failed, S succeeded
		wantOpen bool
	}{
		{name: "half failed over ten attempts", pattern: "FSFSFSFSFS", wantOpen: true},
		{name: "below the minimum count", pattern: "FSFSFSFSF", wantOpen: false},
		{name: "a third failed", pattern: "FSSFSSFSSFSS", wantOpen: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBreakers()
			now := t0
			for _, r := range tc.pattern {
				class := ClassSucceeded
				if r == 'F' {
					class = ClassRetry
				}
				b.Record("ns/sub", p, b.Allow("ns/sub", p, now), class, now)
				now = now.Add(time.Second)
			}
			if got := b.State("ns/sub", now).State == CircuitOpen; got != tc.wantOpen {
				t.Fatalf("open = %v, want %v", got, tc.wantOpen)
			}
		})
	}
	// Failures two windows old are forgotten.
	b := NewBreakers()
	now := t0
	for range 5 {
		b.Record("ns/sub", p, Admission{OK: true}, ClassRetry, now)
	}
	now = now.Add(3 * time.Minute)
	for range 5 {
		b.Record("ns/sub", p, Admission{OK: true}, ClassSucceeded, now)
	}
	b.Record("ns/sub", p, Admission{OK: true}, ClassRetry, now)
	if st := b.State("ns/sub", now); st.State != CircuitClosed {
		t.Fatalf("old failures counted: %+v", st)
	}
}

func TestBreakerDrainsTheBacklogAtTheBoundedRate(t *testing.T) {
	p := streakPolicy()
	p.DrainPerSecond = 10
	b := NewBreakers()
	now := fail(t, b, "ns/sub", p, 3, t0)
	until := b.State("ns/sub", now).Until
	probe := b.Allow("ns/sub", p, until)
	b.Record("ns/sub", p, probe, ClassSucceeded, until)

	// 500 deliveries waited: each comes back when told to, as the delivery controller's requeues do, for 60
	// simulated seconds.
	type waiter struct{ at time.Time }
	backlog := make([]waiter, 500)
	for i := range backlog {
		backlog[i].at = until
	}
	perSecond := map[int]int{}
	sent := 0
	for tick := until; tick.Before(until.Add(60 * time.Second)); tick = tick.Add(10 * time.Millisecond) {
		for i := range backlog {
			w := &backlog[i]
			if w.at.IsZero() || w.at.After(tick) {
				continue
			}
			a := b.Allow("ns/sub", p, tick)
			if !a.OK {
				w.at = a.RetryAt
				continue
			}
			perSecond[int(tick.Sub(until)/time.Second)]++
			w.at = time.Time{}
			sent++
			b.Record("ns/sub", p, a, ClassSucceeded, tick)
		}
	}
	if sent != 500 {
		t.Fatalf("sent %d of the 500 waiting deliveries in 60 s at 10/s", sent)
	}
	for s, n := range perSecond {
		if n > 11 {
			t.Errorf("second %d let %d attempts through, want at most 10 (+1 for the token at the close)", s, n)
		}
	}
	// Once the backlog is gone and the drain quiet, attempts are not bounded any more.
	later := until.Add(2 * time.Minute)
	for i := range 100 {
		if a := b.Allow("ns/sub", p, later); !a.OK {
			t.Fatalf("attempt %d after the drain was held: %+v", i, a)
		}
	}
}

func TestBreakerDisabledPolicyNeverHolds(t *testing.T) {
	b := NewBreakers()
	for i := range 100 {
		b.Record("ns/sub", BreakerPolicy{}, Admission{OK: true}, ClassRetry, t0.Add(time.Duration(i)*time.Second))
	}
	if a := b.Allow("ns/sub", BreakerPolicy{}, t0.Add(time.Hour)); !a.OK {
		t.Fatalf("a disabled breaker held an attempt: %+v", a)
	}
	var none *Breakers
	if a := none.Allow("ns/sub", streakPolicy(), t0); !a.OK {
		t.Fatalf("no breakers held an attempt: %+v", a)
	}
}

func TestBreakerMarksGoneOnlyWhenAsked(t *testing.T) {
	b := NewBreakers()
	b.Record("ns/keep", streakPolicy(), Admission{OK: true}, ClassGone, t0)
	if st := b.State("ns/keep", t0); st.Gone {
		t.Fatalf("a 410 marked a subscription without disableOnGone: %+v", st)
	}
	p := streakPolicy()
	p.DisableOnGone = true
	b.Record("ns/gone", p, Admission{OK: true}, ClassGone, t0)
	if st := b.State("ns/gone", t0); !st.Gone || st.State != CircuitClosed {
		t.Fatalf("after a 410 under disableOnGone = %+v, want Gone", st)
	}
	if keys := drainChanged(b); len(keys) != 1 || keys[0] != "ns/gone" {
		t.Fatalf("Changed after a 410 = %v", keys)
	}
	b.ClearGone("ns/gone")
	if st := b.State("ns/gone", t0); st.Gone {
		t.Fatalf("ClearGone left %+v", st)
	}
}
