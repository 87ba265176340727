package controller

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"

	"github.com/hookpost/hookpost/internal/delivery"
)

// Prometheus metrics on the manager's metrics endpoint.
var (
	deliveriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_deliveries_total",
		Help: "Deliveries finished, by outcome (succeeded, failed).",
	}, []string{"outcome"})
	attemptsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_attempts_total",
		Help: "HTTP attempts made, by class (Succeeded, Retry, Permanent, Gone).",
	}, []string{"class"})
	attemptDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hookpost_attempt_duration_seconds",
		Help:    "Duration of HTTP attempts, from dial to the last body byte read.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
)

// RegisterMetrics registers the delivery metrics, plus gauges read from the sender and from retryBacklog (the
// number of deliveries waiting for a retry), with controller-runtime's registry.
func RegisterMetrics(sender *delivery.Sender, retryBacklog func() float64) {
	metrics.Registry.MustRegister(deliveriesTotal, attemptsTotal, attemptDuration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookpost_attempts_in_flight",
			Help: "HTTP attempts in flight.",
		}, func() float64 { return float64(sender.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookpost_retry_backlog",
			Help: "Deliveries waiting for a retry (phase Retrying).",
		}, retryBacklog),
	)
}

func observeAttempt(out delivery.Outcome) {
	attemptsTotal.WithLabelValues(string(out.Class)).Inc()
	attemptDuration.Observe(out.Duration.Seconds())
}

// RetryBacklog returns a gauge function counting deliveries in phase Retrying, read from the cache.
func RetryBacklog(r client.Reader) func() float64 {
	return func() float64 {
		list := &hookpostv1.WebhookDeliveryList{}
		if err := r.List(context.Background(), list, client.UnsafeDisableDeepCopy); err != nil {
			return 0
		}
		n := 0
		for i := range list.Items {
			if list.Items[i].Status.Phase == hookpostv1.DeliveryRetrying {
				n++
			}
		}
		return float64(n)
	}
}
