package delivery_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
)

// BenchmarkRateLimitOverARealReceiver measures a 10/s spec.rateLimit on the real clock over a real receiver, used
// as the two paths use it: events are offered at 100/s; the first attempt takes a start if one is free (TakeRate,
// as ingest does) and otherwise hands the event to a waiter that books a start and sleeps until it (ReserveRate,
// as the delivery controller's RequeueAfter does). An unlimited subscription on the same receiver is offered the same
// events alongside. It reports what arrived per second over the run: limited-events/s (expect 10 +- 10 %) and
// unlimited-events/s (expect offered-events/s, about 100).
func BenchmarkRateLimitOverARealReceiver(b *testing.B) {
	const (
		perSecond = 10
		offered   = 100 // events per second, to each subscription
		runFor    = 10 * time.Second
	)
	var arrived sync.Map // path -> *atomic.Int64
	count := func(path string) *atomic.Int64 {
		n, _ := arrived.LoadOrStore(path, new(atomic.Int64))
		return n.(*atomic.Int64)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		count(r.URL.Path).Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	for range b.N {
		arrived.Clear()
		s := newSender(delivery.SenderOptions{MaxPerHost: 64})
		limited := delivery.Target{Namespace: "bench", Subscription: "limited", Rate: delivery.RateLimit{PerSecond: perSecond, Burst: 1}}
		unlimited := delivery.Target{Namespace: "bench", Subscription: "unlimited"}
		ctx, cancel := context.WithTimeout(context.Background(), runFor)
		var wg sync.WaitGroup
		send := func(path string) {
			defer wg.Done()
			r := post(srv.URL + path)
			r.Namespace = "bench"
			if out := s.Send(ctx, r, 5*time.Second, false, time.Now()); out.Class != delivery.ClassSucceeded && ctx.Err() == nil {
				b.Errorf("attempt to %s: %+v", path, out)
			}
		}
		start, offers := time.Now(), 0
		tick := time.NewTicker(time.Second / offered)
	offer:
		for {
			select {
			case <-ctx.Done():
				break offer
			case <-tick.C:
			}
			offers++
			wg.Add(2)
			go send("/unlimited")
			if s.TakeRate(unlimited, time.Now()) && s.TakeRate(limited, time.Now()) {
				go send("/limited")
				continue
			}
			go func() {
				at := s.ReserveRate(limited, time.Now())
				select {
				case <-ctx.Done():
					wg.Done() // booked past the end of the run: not sent
				case <-time.After(time.Until(at)):
					send("/limited")
				}
			}()
		}
		tick.Stop()
		elapsed := time.Since(start)
		wg.Wait()
		cancel()
		b.ReportMetric(float64(count("/limited").Load())/elapsed.Seconds(), "limited-events/s")
		b.ReportMetric(float64(count("/unlimited").Load())/elapsed.Seconds(), "unlimited-events/s")
		b.ReportMetric(float64(offers)/elapsed.Seconds(), "offered-events/s") // the ticker drops ticks on a busy machine
	}
}
