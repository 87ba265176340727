package ingest

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
)

// Dispatcher turns one (subscription, event) match into work. It is the one seam between matching and delivery:
// FirstAttempt makes the first attempt itself and writes an object only when the delivery needs one;
// DeliveryCreator writes an object for every match. Dispatch returns nil only when the match is done for good (a
// 2xx, or a durable WebhookDelivery); the same match dispatched twice makes at most one object.
type Dispatcher interface {
	Dispatch(ctx context.Context, sub *Subscription, ev *source.Event) error
}

// DeliveryCreator dispatches by creating a WebhookDelivery named after (subscription, event id), for the delivery
// controller to attempt: the object-per-delivery mode (--first-attempt=false).
type DeliveryCreator struct {
	Client client.Client
	// Sealer seals each delivery, so the delivery controller sends it as a real event.
	Sealer *controller.Sealer
}

// Dispatch creates the delivery; AlreadyExists means an earlier hand-over of the event created it, which is done.
func (c DeliveryCreator) Dispatch(ctx context.Context, sub *Subscription, ev *source.Event) error {
	return createDelivery(ctx, c.Client, sub, ev, NewDelivery(sub, ev, c.Sealer))
}

// createDelivery creates d, the delivery of ev to sub. AlreadyExists is success (an earlier hand-over of the
// event created it), and so is a refusal no retry can fix, which is logged and counted instead.
func createDelivery(ctx context.Context, c client.Client, sub *Subscription, ev *source.Event, d *hookpostv1.WebhookDelivery) error {
	reason, err := tryCreate(ctx, c, sub, ev, d)
	if reason != "" {
		// Retrying would be refused again and hold back every event behind this one, for every subscription:
		// record it loudly and move on.
		ctrl.LoggerFrom(ctx).Error(err, "Delivery refused by the API server; event not delivered to this subscription",
			"eventID", ev.ID, "eventType", ev.Type, "subscriptionName", sub.Name, "namespace", sub.Namespace, "reason", reason)
		return nil
	}
	return err
}

// tryCreate creates d; AlreadyExists is success. A refusal no retry can fix returns its reason (counted in
// hookpost_deliveries_refused_total) with the API server's error, for the caller to report; any other error is
// returned for the batch to be handed back.
func tryCreate(ctx context.Context, c client.Client, sub *Subscription, ev *source.Event, d *hookpostv1.WebhookDelivery) (refused string, err error) {
	err = c.Create(ctx, d)
	if err == nil || apierrors.IsAlreadyExists(err) {
		return "", nil
	}
	if reason := refusal(err); reason != "" {
		metrics.DeliveryRefused(reason)
		return reason, err
	}
	return "", fmt.Errorf("create delivery of event %s for subscription %s/%s: %w", ev.ID, sub.Namespace, sub.Name, err)
}

// refusal classifies a create error that no retry can fix ("" when a retry may): an object the API server
// refuses, a namespace being deleted, a quota that is full. A Forbidden from RBAC is not one of them: it means
// the operator is misconfigured, and every event would be dropped, so it blocks until someone fixes it.
func refusal(err error) string {
	switch {
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err):
		return "invalid"
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return "namespaceTerminating"
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		return "quotaExceeded"
	}
	return ""
}

// NewDelivery builds the WebhookDelivery for an event and a subscription: deterministic name, labels for the
// subscription and event type, owned by the subscription so it goes when the subscription goes, and sealed by
// sealer: the delivery controller sends a delivery without the operator's seal as a test event.
func NewDelivery(sub *Subscription, ev *source.Event, sealer *controller.Sealer) *hookpostv1.WebhookDelivery {
	labels := map[string]string{}
	if v := hookpostv1.SubscriptionLabelValue(sub.Name); v != "" {
		labels[hookpostv1.LabelSubscription] = v
	}
	if v := hookpostv1.EventTypeLabelValue(ev.Type); v != "" {
		labels[hookpostv1.LabelEventType] = v
	}
	d := &hookpostv1.WebhookDelivery{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: sub.Namespace,
			Name:      hookpostv1.DeliveryName(sub.Name, ev.ID),
			Labels:    labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: hookpostv1.GroupVersion.String(),
				Kind:       "WebhookSubscription",
				Name:       sub.Name,
				UID:        types.UID(sub.UID),
				Controller: ptr.To(true),
			}},
		},
		Spec: hookpostv1.WebhookDeliverySpec{
			SubscriptionName: sub.Name,
			Event: hookpostv1.EventMeta{
				ID:         ev.ID,
				Type:       ev.Type,
				TenantID:   ev.TenantID,
				Collection: ev.Collection,
				OccurredAt: metav1.NewTime(ev.OccurredAt),
			},
		},
	}
	if len(ev.Data) > 0 {
		d.Spec.Data = &apiextensionsv1.JSON{Raw: ev.Data}
	}
	sealer.Seal(d)
	return d
}
