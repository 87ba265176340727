package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

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
