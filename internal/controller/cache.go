package controller

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// annotationLastApplied is what `kubectl apply` keeps on every object it writes: a second copy of the object's
// spec, which nothing in the operator reads.
const annotationLastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// annotationDataStripped marks a cached WebhookDelivery whose spec.data the cache dropped (see CacheOptions). It
// exists only in the operator's memory: the API server never sees it, because the controllers write deliveries
// with patches computed between two copies that both carry it.
const annotationDataStripped = "webhooks.hookpost.io/cache-stripped-data"

// CacheOptions are the manager's cache options, as the operator runs them; tests that run the real manager use
// them too. With transforms, the cache keeps no managedFields and no last-applied-configuration annotation of any
// object, and no spec.data of finished WebhookDeliveries: with tens of thousands of retained deliveries those are
// most of the operator's memory, and nothing reads them from the cache. A finished delivery is sent again only on
// a replay, and the delivery controller then reads it whole from the API server (dataStripped). transforms=false
// (the manager's hidden --cache-transforms=false) keeps everything, so the bench can show the difference.
//
// Whatever transforms says, the cache watches only Secrets labelled hookpostv1.LabelSigningSecret=true (their
// metadata; see Secrets): the ones Hookpost generates and the ones users name in spec.signing.secretRef and
// spec.tls. An unrelated Secret, and its last-applied-configuration annotation, which holds its data in clear, is
// then never in the operator's memory. ConfigMaps are cached whole (CA bundles are public), but only those
// labelled hookpostv1.LabelCABundle=true, so the cluster's other ConfigMaps take no memory.
func CacheOptions(transforms bool) cache.Options {
	secrets := cache.ByObject{Label: SigningSecretSelector}
	caBundles := cache.ByObject{Label: CABundleSelector}
	if !transforms {
		return cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: secrets, &corev1.ConfigMap{}: caBundles}}
	}
	return cache.Options{
		DefaultTransform: stripServerFields,
		ByObject: map[client.Object]cache.ByObject{
			&hookpostv1.WebhookDelivery{}: {Transform: stripDelivery},
			&corev1.Secret{}:              secrets,
			&corev1.ConfigMap{}:           caBundles,
		},
	}
}

// SigningSecretSelector selects the Secrets the operator may read as signing secrets.
var SigningSecretSelector = labels.SelectorFromSet(labels.Set{hookpostv1.LabelSigningSecret: "true"})

// stripServerFields drops what the API server and kubectl keep on an object for their own use. It changes the
// object in place: the informer hands over a freshly decoded object that nothing else holds yet.
var stripServerFields toolscache.TransformFunc = func(in any) (any, error) {
	obj, err := meta.Accessor(in)
	if err != nil {
		return in, nil // not an object (a tombstone is never transformed); keep it as it is
	}
	obj.SetManagedFields(nil)
	if a := obj.GetAnnotations(); a != nil {
		if _, ok := a[annotationLastApplied]; ok {
			delete(a, annotationLastApplied)
			obj.SetAnnotations(a)
		}
	}
	return in, nil
}

// stripDelivery is stripServerFields plus, for a finished delivery, its payload, marked as dropped. A delivery
// that is not finished keeps its data: it is about to be sent.
var stripDelivery toolscache.TransformFunc = func(in any) (any, error) {
	if _, err := stripServerFields(in); err != nil {
		return in, err
	}
	d, ok := in.(*hookpostv1.WebhookDelivery)
	if !ok || !d.Status.Phase.Finished() || d.Spec.Data == nil {
		return in, nil
	}
	d.Spec.Data = nil
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[annotationDataStripped] = "true"
	return in, nil
}

// dataStripped reports whether d came from the cache without its spec.data: EventOf(d) would be an event without
// data, so a reader that sends or shows d must read it from the API server first.
func dataStripped(d *hookpostv1.WebhookDelivery) bool {
	_, ok := d.Annotations[annotationDataStripped]
	return ok
}

// WatchNamespaces restricts o to namespaces (the manager's --watch-namespaces): the cache lists and watches
// namespaced objects only there, so the controllers and ingest's matching see only those namespaces' subscriptions,
// deliveries and Secrets, and the operator needs namespaced Roles there instead of cluster-wide access. None
// leaves o cluster-wide. Cluster-scoped objects (Namespaces, which tenant isolation reads) are still watched
// cluster-wide: a cache cannot select several objects by name.
func WatchNamespaces(o cache.Options, namespaces []string) cache.Options {
	if len(namespaces) == 0 {
		return o
	}
	o.DefaultNamespaces = make(map[string]cache.Config, len(namespaces))
	for _, ns := range namespaces {
		o.DefaultNamespaces[ns] = cache.Config{}
	}
	return o
}
