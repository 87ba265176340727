// Package metrics owns the operator's Prometheus metrics: those of deliveries and attempts, which the first attempt
// made from ingest and the delivery controller share, so an attempt is counted the same way whichever path made
// it, and those of the sources and ingest. It imports no Kubernetes package: the binary registers the collectors
// with the manager's registry.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookpost/hookpost/internal/delivery"
)

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
	firstAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_first_attempts_total",
		Help: "Matches handled by ingest's first attempt, by result: succeeded (no object needed), failed (a WebhookDelivery records the attempt and retries), held (no attempt: subscription paused or not ready, over its rate limit, or destination host busy; a WebhookDelivery waits).",
	}, []string{"result"})
	rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_rate_limited_total",
		Help: "Attempts postponed by their subscription's spec.rateLimit, by subscription: first attempts ingest handed to the delivery controller, and deliveries the controller booked a later start for.",
	}, []string{"namespace", "subscription"})
	objectsWritten = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_success_objects_total",
		Help: "Succeeded first attempts, by whether a WebhookDelivery object was written for them (written) or only counted (counted): only the newest spec.history.succeededLimit per flush interval get one.",
	}, []string{"result"})
)

// Register registers the collectors with reg, plus gauges read from the sender (attempts in flight), from
// retryBacklog (deliveries waiting for a retry), from unfinished (deliveries not finished) and from breakers (the
// subscriptions' circuits).
func Register(reg prometheus.Registerer, sender *delivery.Sender, retryBacklog, unfinished func() float64, breakers *delivery.Breakers) {
	reg.MustRegister(ingestCollectors()...)
	reg.MustRegister(deliveriesTotal, attemptsTotal, attemptDuration, firstAttempts, objectsWritten, rateLimited,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookpost_attempts_in_flight",
			Help: "HTTP attempts in flight.",
		}, func() float64 { return float64(sender.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookpost_retry_backlog",
			Help: "Deliveries waiting for a retry (phase Retrying).",
		}, retryBacklog),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookpost_unfinished_deliveries",
			Help: "WebhookDeliveries not finished (phase Pending or Retrying), counted against --max-unfinished.",
		}, unfinished),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookpost_circuits_open",
			Help: "Subscriptions whose circuit (spec.circuitBreaker) is open or half-open in this replica: their deliveries wait.",
		}, func() float64 { open, _, _ := breakers.Counts(); return float64(open) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hookpost_circuits_opened_total",
			Help: "Times a subscription's circuit opened in this replica after failed attempts.",
		}, func() float64 { _, opened, _ := breakers.Counts(); return float64(opened) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hookpost_circuits_closed_total",
			Help: "Times a subscription's circuit closed in this replica after a probe attempt succeeded.",
		}, func() float64 { _, _, closed := breakers.Counts(); return float64(closed) }),
	)
}

// ObserveAttempt counts one HTTP attempt.
func ObserveAttempt(out delivery.Outcome) {
	attemptsTotal.WithLabelValues(string(out.Class)).Inc()
	attemptDuration.Observe(out.Duration.Seconds())
}

// DeliveryFinished counts a delivery that succeeded or failed for good.
func DeliveryFinished(succeeded bool) {
	if succeeded {
		deliveriesTotal.WithLabelValues("succeeded").Inc()
		return
	}
	deliveriesTotal.WithLabelValues("failed").Inc()
}

// RateLimited counts an attempt of namespace/subscription postponed by the subscription's rate limit.
func RateLimited(namespace, subscription string) {
	rateLimited.WithLabelValues(namespace, subscription).Inc()
}

// ForgetSubscription drops the series of a deleted subscription, so they do not grow with every one ever made.
func ForgetSubscription(namespace, subscription string) {
	rateLimited.DeleteLabelValues(namespace, subscription)
}

// First-attempt results, for FirstAttempt.
const (
	FirstAttemptSucceeded = "succeeded"
	FirstAttemptFailed    = "failed"
	FirstAttemptHeld      = "held"
)

// FirstAttempt counts a match handled by ingest's first attempt.
func FirstAttempt(result string) { firstAttempts.WithLabelValues(result).Inc() }

// SuccessObjects counts succeeded first attempts written as objects and those only counted.
func SuccessObjects(written, counted int) {
	objectsWritten.WithLabelValues("written").Add(float64(written))
	objectsWritten.WithLabelValues("counted").Add(float64(counted))
}
