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
	// indexSubscriptionSecret indexes WebhookSubscriptions by the names of the Secrets they read: the one they
	// sign with and those spec.tls names.
	indexSubscriptionSecret = "secretNames"
	// indexDeliveryOrderingKey indexes ordered WebhookDeliveries by hookpostv1.OrderingKeyHash of their
	// subscription and spec.ordering.key: the deliveries one key's sequencing reads.
	indexDeliveryOrderingKey = "spec.ordering.keyHash"
	// indexSubscriptionConfigMap indexes WebhookSubscriptions by the CA bundle ConfigMap spec.tls names.
	indexSubscriptionConfigMap = "configMapName"
)

// setupIndexes registers the cache indexes; call it once per manager, before the controllers.
func setupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &hookpostv1.WebhookDelivery{}, IndexDeliverySubscription, func(o client.Object) []string {
		return []string{o.(*hookpostv1.WebhookDelivery).Spec.SubscriptionName}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &hookpostv1.WebhookDelivery{}, indexDeliveryOrderingKey, func(o client.Object) []string {
		if d := o.(*hookpostv1.WebhookDelivery); d.Spec.Ordering != nil {
			return []string{orderingIndexValue(d)}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &hookpostv1.WebhookSubscription{}, indexSubscriptionSecret, func(o client.Object) []string {
		sub := o.(*hookpostv1.WebhookSubscription)
		names := []string{signingSecretName(sub)}
		if t := sub.Spec.TLS; t != nil {
			if t.ClientCertificateRef != nil {
				names = append(names, t.ClientCertificateRef.Name)
			}
			if t.CABundleRef != nil && t.CABundleRef.SecretName != "" {
				names = append(names, t.CABundleRef.SecretName)
			}
		}
		return names
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &hookpostv1.WebhookSubscription{}, indexSubscriptionConfigMap, func(o client.Object) []string {
		if t := o.(*hookpostv1.WebhookSubscription).Spec.TLS; t != nil && t.CABundleRef != nil && t.CABundleRef.ConfigMapName != "" {
			return []string{t.CABundleRef.ConfigMapName}
		}
		return nil
	})
}

// signingSecretName is the Secret a subscription signs with: the one it names, or the one Hookpost generates.
func signingSecretName(sub *hookpostv1.WebhookSubscription) string {
	if ref := sub.Spec.Signing.SecretRef; ref != nil {
		return ref.Name
	}
	return hookpostv1.GeneratedSecretName(sub.Name)
}
