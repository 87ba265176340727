package controller

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// Cache indexes shared by the reconcilers and the ingest runnable.
const (
	// IndexDeliverySubscription indexes WebhookDeliveries by spec.subscriptionName.
	IndexDeliverySubscription = "spec.subscriptionName"
	// indexSubscriptionSecret indexes WebhookSubscriptions by the name of the Secret they sign with.
	indexSubscriptionSecret = "signingSecretName"
)

// setupIndexes registers the cache indexes; call it once per manager, before the controllers.
func setupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &hookpostv1.WebhookDelivery{}, IndexDeliverySubscription, func(o client.Object) []string {
		return []string{o.(*hookpostv1.WebhookDelivery).Spec.SubscriptionName}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &hookpostv1.WebhookSubscription{}, indexSubscriptionSecret, func(o client.Object) []string {
		return []string{signingSecretName(o.(*hookpostv1.WebhookSubscription))}
	})
}

// signingSecretName is the Secret a subscription signs with: the one it names, or the one Hookpost generates.
func signingSecretName(sub *hookpostv1.WebhookSubscription) string {
	if ref := sub.Spec.Signing.SecretRef; ref != nil {
		return ref.Name
	}
	return hookpostv1.GeneratedSecretName(sub.Name)
}
