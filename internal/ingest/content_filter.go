package ingest

import (
	"context"
	"errors"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/hookpost/hookpost/internal/filter"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
)

// contentFilter keeps, in place, the matches of ev whose spec.filter.expression accepts it (and those without
// one). It runs after Match, so tenant isolation and the tenant and collection filters have already spoken, and
// before any dispatch. The event's data is parsed once, by the first expression that reads it, for every
// subscription. A subscription whose expression does not compile, or does not decide this event (an evaluation
// error, the cost limit, a value that is not a bool), does not get the event: its filter cannot say yes. That is
// counted in hookpost_filter_errors_total and logged at V(1) without the event's data.
func contentFilter(ctx context.Context, ev *source.Event, matches []*Subscription) []*Subscription {
	var fev *filter.Event
	kept := matches[:0]
	for _, s := range matches {
		if s.Expression == "" {
			kept = append(kept, s)
			continue
		}
		reason := filter.ReasonInvalid
		if s.Filter != nil {
			if fev == nil {
				fev = filterEvent(ev)
			}
			ok, err := s.Filter.Match(fev)
			var ferr *filter.Error
			if !errors.As(err, &ferr) {
				if ok {
					kept = append(kept, s)
				}
				continue
			}
			reason = ferr.Reason
		}
		metrics.FilterError(reason)
		// CEL's message may quote the event's data: only the reason is logged.
		ctrl.LoggerFrom(ctx).V(1).Info("Event not delivered: the subscription's filter expression did not accept it",
			"eventID", ev.ID, "eventType", ev.Type, "namespace", s.Namespace, "subscriptionName", s.Name, "reason", reason)
	}
	return kept
}

// filterEvent is what a filter expression or an ordering key sees of ev.
func filterEvent(ev *source.Event) *filter.Event {
	return &filter.Event{Type: ev.Type, Tenant: ev.TenantID, Collection: ev.Collection, Time: ev.OccurredAt, Data: ev.Data}
}
