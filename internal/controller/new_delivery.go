package controller

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// NewDelivery builds the WebhookDelivery of event ev, whose data is data (JSON, nil for none), for the subscription
// named subscription (uid its UID) in namespace: deterministic name, labels for the subscription and event type,
// owned by the subscription so it goes when the subscription goes, and sealed by sealer: the delivery controller
// sends a delivery without the operator's seal as a test event. Ingest makes its deliveries with it, and a
// WebhookReplay the ones it makes again.
func NewDelivery(namespace, subscription string, uid types.UID, ev hookpostv1.EventMeta, data []byte, sealer *Sealer) *hookpostv1.WebhookDelivery {
	labels := map[string]string{}
	if v := hookpostv1.SubscriptionLabelValue(subscription); v != "" {
		labels[hookpostv1.LabelSubscription] = v
	}
	if v := hookpostv1.EventTypeLabelValue(ev.Type); v != "" {
		labels[hookpostv1.LabelEventType] = v
	}
	d := &hookpostv1.WebhookDelivery{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace,
			Name:      hookpostv1.DeliveryName(subscription, ev.ID),
			Labels:    labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: hookpostv1.GroupVersion.String(),
				Kind:       "WebhookSubscription",
				Name:       subscription,
				UID:        uid,
				Controller: ptr.To(true),
			}},
		},
		Spec: hookpostv1.WebhookDeliverySpec{SubscriptionName: subscription, Event: ev},
	}
	if len(data) > 0 {
		d.Spec.Data = &apiextensionsv1.JSON{Raw: data}
	}
	sealer.Seal(d)
	return d
}
