package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/filter"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
)

// Dispatcher turns one (subscription, event) match into work. It is the one seam between matching and delivery:
// FirstAttempt makes the first attempt itself and writes an object only when the delivery needs one;
// DeliveryCreator writes an object for every match. Dispatch returns nil only when the match is done for good (a
// 2xx, or a durable WebhookDelivery); the same match dispatched twice makes at most one object.
type Dispatcher interface {
	Dispatch(ctx context.Context, sub *Subscription, ev *source.Event, later Later) error
}

// Later hands a dispatch's remaining work to its batch: the work must finish before the batch is acknowledged (an
// error hands the batch back, as a Dispatch error does), but it does not hold one of the batch's dispatchers
// meanwhile. A first attempt whose host or namespace is hanging hands its match over this way, so the API writes
// of a hanging tenant's many hand-overs do not delay the batch's healthy first attempts. The work gets a context
// of its own: the dispatchers' ends when the last of them returns, which is usually before the work is done.
type Later func(work func(ctx context.Context) error)

// DeliveryCreator dispatches by creating a WebhookDelivery named after (subscription, event id), for the delivery
// controller to attempt: the object-per-delivery mode (--first-attempt=false).
type DeliveryCreator struct {
	Client client.Client
	// Refusals reports deliveries the API server refuses for good; nil only logs them.
	Refusals *Refusals
	// Sealer seals each delivery, so the delivery controller sends it as a real event.
	Sealer *controller.Sealer
	// Caps parks or refuses matches past the unfinished-delivery caps; nil admits every match.
	Caps *Caps
}

// Dispatch creates the delivery; AlreadyExists means an earlier hand-over of the event created it, which is done.
func (c DeliveryCreator) Dispatch(ctx context.Context, sub *Subscription, ev *source.Event, _ Later) error {
	if sub.OrderingKey != "" {
		return createDelivery(ctx, c.Client, c.Refusals, c.Caps, sub, ev, NewDelivery(ctx, sub, ev, c.Sealer))
	}
	release, admitted, err := c.Caps.Hold(ctx, sub, ev)
	if !admitted {
		return err
	}
	defer release()
	return createDelivery(ctx, c.Client, c.Refusals, c.Caps, sub, ev, NewDelivery(ctx, sub, ev, c.Sealer))
}

// Forget drops what was kept for a deleted subscription.
func (c DeliveryCreator) Forget(uid types.UID) { c.Refusals.Forget(uid) }

// createDelivery creates d, the delivery of ev to sub. AlreadyExists is success (an earlier hand-over of the
// event created it), and so is a refusal no retry can fix, which is reported through refusals instead.
func createDelivery(ctx context.Context, c client.Client, refusals *Refusals, caps *Caps, sub *Subscription, ev *source.Event, d *hookpostv1.WebhookDelivery) error {
	reason, err := tryCreate(ctx, c, refusals, caps, sub, ev, d)
	if reason != "" {
		// Retrying would be refused again and hold back every event behind this one, for every namespace: the
		// refusal is scoped to this subscription's namespace, so report it there and move on.
		refusals.Refused(ctx, sub, ev, reason, err, nil)
		return nil
	}
	return err
}

// tryCreate creates d; AlreadyExists is success. A refusal no retry can fix returns its reason (counted in
// hookpost_deliveries_refused_total) with the API server's error, for the caller to report; any other error is
// returned for the batch to be handed back. A created delivery stays counted by caps until it finishes.
func tryCreate(ctx context.Context, c client.Client, refusals *Refusals, caps *Caps, sub *Subscription, ev *source.Event, d *hookpostv1.WebhookDelivery) (refused string, err error) {
	err = c.Create(ctx, d)
	if err == nil {
		caps.created(sub, d.Name)
		refusals.Created(ctx, sub)
		return "", nil
	}
	if apierrors.IsAlreadyExists(err) {
		refusals.admitted(sub.Namespace)
		return "", nil
	}
	reason := refusal(err)
	if reason == "" && apierrors.IsForbidden(err) && refusals.allowedElsewhere(ctx, sub.Namespace) {
		// Forbidden here while the operator may create deliveries elsewhere: scoped to this namespace.
		reason = refusalForbidden
	}
	if reason != "" {
		metrics.DeliveryRefused(reason)
		return reason, err
	}
	return "", fmt.Errorf("create delivery of event %s for subscription %s/%s: %w", ev.ID, sub.Namespace, sub.Name, err)
}

// Values of refusal(), the reason label of hookpost_deliveries_refused_total.
const (
	refusalInvalid     = "invalid"
	refusalTerminating = "namespaceTerminating"
	refusalQuota       = "quotaExceeded"
	refusalAdmission   = "admissionDenied"
	refusalForbidden   = "forbidden"
	// refusalUnfinishedCap is not the API server's: Caps refuses a match past the unfinished-delivery caps when
	// there is no ledger to park it in.
	refusalUnfinishedCap = "unfinishedCap"
)

// refusal classifies a create error that no retry can fix ("" when a retry may). Each is scoped to the
// subscription's namespace: an admission policy or webhook denying the object there, an object the API server
// refuses, a namespace being deleted, a quota that is full. Any other Forbidden (RBAC, an authorizer) is scoped
// only when the operator may create deliveries in other namespaces, which Refusals asks the API server
// (tryCreate); when it may nowhere, the install is broken and every event would be dropped, so the batch is
// handed back and retried until someone fixes it.
func refusal(err error) string {
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return refusalTerminating
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		return refusalQuota
	case admissionDenied(err):
		return refusalAdmission
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err):
		return refusalInvalid
	}
	return ""
}

// admissionDenied reports whether err is an admission webhook's or a ValidatingAdmissionPolicy's denial. The API
// server marks neither with a cause; both say so in the message, in these words since Kubernetes 1.16 and 1.26.
// A webhook that cannot be called is an InternalError, not a denial: that one is retried.
func admissionDenied(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Code >= 500 {
		return false
	}
	msg := status.Status().Message
	return (strings.Contains(msg, "admission webhook ") && strings.Contains(msg, " denied the request")) ||
		(strings.Contains(msg, "ValidatingAdmissionPolicy ") && strings.Contains(msg, " denied request"))
}

// NewDelivery builds the WebhookDelivery for an event and a subscription (controller.NewDelivery), with its place
// in its ordering key's sequence when the subscription orders its deliveries, and sealed by sealer: the delivery
// controller sends a delivery without the operator's seal as a test event.
func NewDelivery(ctx context.Context, sub *Subscription, ev *source.Event, sealer *controller.Sealer) *hookpostv1.WebhookDelivery {
	d := controller.NewDelivery(sub.Namespace, sub.Name, types.UID(sub.UID), hookpostv1.EventMeta{
		ID:         ev.ID,
		Type:       ev.Type,
		TenantID:   ev.TenantID,
		Collection: ev.Collection,
		OccurredAt: metav1.NewTime(ev.OccurredAt),
	}, ev.Data, nil)
	if o := orderingOf(ctx, sub, ev); o != nil {
		d.Spec.Ordering = o
		d.Labels[hookpostv1.LabelOrderingKey] = hookpostv1.OrderingKeyHash(sub.Name, o.Key)
	}
	sealer.Seal(d)
	return d
}

// orderingOf places ev in its key's sequence for sub (spec.ordering); nil when sub does not order its deliveries,
// or ev does not come straight from a source (a match parked before the subscription ordered them has no
// position, and is sent on its own). An event whose key does not evaluate, or whose ordering key does not
// compile, gets the key "": it is ordered with the other such events, never sent out of turn.
func orderingOf(ctx context.Context, sub *Subscription, ev *source.Event) *hookpostv1.DeliveryOrdering {
	if sub.OrderingKey == "" || ev.Source == "" {
		return nil
	}
	o := &hookpostv1.DeliveryOrdering{Source: ev.Source, Position: int64(min(ev.Position, math.MaxInt64))}
	if sub.Ordering == nil {
		return o
	}
	key, err := sub.Ordering.Key(filterEvent(ev))
	if err != nil {
		// CEL's message may quote the event's data: only the reason is logged.
		var ferr *filter.Error
		reason := filter.ReasonEvaluation
		if errors.As(err, &ferr) {
			reason = ferr.Reason
		}
		ctrl.LoggerFrom(ctx).V(1).Info("Ordering key not evaluated; the event is ordered under the key \"\"",
			"eventID", ev.ID, "namespace", sub.Namespace, "subscriptionName", sub.Name, "reason", reason)
	}
	o.Key = key
	return o
}
