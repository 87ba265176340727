package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/hookpost/hookpost/internal/source"
)

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
		Help: "Deliveries the API server refused for good (invalid, namespaceTerminating, quotaExceeded); the event was not delivered to that subscription.",
	}, []string{"reason"})
	sourceLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hookpost_source_lag_seconds",
		Help: "Age of the oldest event of the batch just claimed, by source; 0 once the source has been idle: how far ingest trails the producers.",
	}, []string{"source"})
)

func init() {
	metrics.Registry.MustRegister(eventsIngested, eventsRejected, deliveriesCreated, deliveriesRefused, sourceLag)
}

func observeBatch(src string, events []source.Event, dispatched int) {
	eventsIngested.WithLabelValues(src).Add(float64(len(events)))
	deliveriesCreated.WithLabelValues(src).Add(float64(dispatched))
}

// observeLag sets the lag from a batch just claimed, before it is dispatched: a batch that keeps failing
// still shows how far behind ingest is.
func observeLag(src string, events []source.Event, now time.Time) {
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
