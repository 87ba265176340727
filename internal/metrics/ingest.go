package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookpost/hookpost/internal/source"
)

// Source and ingest metrics: per source, from every replica.
var (
	eventsIngested = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_events_ingested_total",
		Help: "Events turned into deliveries (or matched nothing), by source.",
	}, []string{"source"})
	eventsRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_events_rejected_total",
		Help: "Malformed events set aside by a source, by source.",
	}, []string{"source"})
	deliveriesCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_deliveries_dispatched_total",
		Help: "Matches of an event and a subscription dispatched, by source.",
	}, []string{"source"})
	deliveriesRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_deliveries_refused_total",
		Help: "WebhookDeliveries the API server refused for good, by reason (admissionDenied, forbidden, invalid, namespaceTerminating, quotaExceeded), and matches refused past the unfinished-delivery caps without a ledger to park them in (unfinishedCap); unless its first attempt had succeeded, the event was not delivered to that subscription and is in the ledger with outcome refused (when there is one).",
	}, []string{"reason"})
	filterErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpost_filter_errors_total",
		Help: "Matches of an event and a subscription whose spec.filter.expression could not decide, so the event was not delivered to it, by reason (invalid: the expression does not compile; evaluation: e.g. a missing field read without has(); costExceeded: the cost limit; notBool).",
	}, []string{"reason"})
	deliveriesParked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hookpost_deliveries_parked_total",
		Help: "Matches parked in the ledger's database because their subscription, or the cluster, had reached its cap of unfinished WebhookDeliveries; each becomes a WebhookDelivery when there is room.",
	})
	parkedNow = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hookpost_parked_deliveries",
		Help: "Matches parked in the ledger's database and not yet made into WebhookDeliveries, as the drain last counted them (on the leader; 0 elsewhere).",
	})
	sourceLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hookpost_source_lag_seconds",
		Help: "Age of the oldest event of the batch just claimed, by source; 0 once the source has been idle: how far ingest trails the producers.",
	}, []string{"source"})
)

// ObserveBatch counts a batch ingest handled and the matches it dispatched.
func ObserveBatch(src string, events []source.Event, dispatched int) {
	eventsIngested.WithLabelValues(src).Add(float64(len(events)))
	deliveriesCreated.WithLabelValues(src).Add(float64(dispatched))
}

// ObserveLag sets the lag from a batch just claimed, before it is dispatched: a batch that keeps failing
// still shows how far behind ingest is.
func ObserveLag(src string, events []source.Event, now time.Time) {
	if len(events) > 0 {
		oldest := events[0].OccurredAt
		for _, ev := range events[1:] {
			if ev.OccurredAt.Before(oldest) {
				oldest = ev.OccurredAt
			}
		}
		sourceLag.WithLabelValues(src).Set(now.Sub(oldest).Seconds())
	}
}

// ObserveRejection counts a malformed event a source set aside.
func ObserveRejection(r source.Rejection) {
	eventsRejected.WithLabelValues(r.Source).Inc()
}

// SourceCaughtUp sets a source's lag to zero: it had nothing to hand over for a while.
func SourceCaughtUp(src string) {
	sourceLag.WithLabelValues(src).Set(0)
}

// DeliveryRefused counts a delivery the API server refused for good, by reason.
func DeliveryRefused(reason string) {
	deliveriesRefused.WithLabelValues(reason).Inc()
}

// FilterError counts a match whose content filter could not decide, by reason; the event was not delivered to
// that subscription.
func FilterError(reason string) {
	filterErrors.WithLabelValues(reason).Inc()
}

// DeliveryParked counts a match parked past the unfinished-delivery caps.
func DeliveryParked() { deliveriesParked.Inc() }

// SetParked sets the number of parked matches.
func SetParked(n int64) { parkedNow.Set(float64(n)) }

// ingestCollectors are the source and ingest metrics, registered by Register.
func ingestCollectors() []prometheus.Collector {
	return []prometheus.Collector{eventsIngested, eventsRejected, deliveriesCreated, deliveriesRefused, deliveriesParked, parkedNow, filterErrors, sourceLag}
}
