package controller

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/signing"
)

// Secrets reads signing Secrets, and the Secrets and ConfigMap spec.tls names (ReadTLS), without caching every
// Secret of the cluster: the manager's cache holds only the
// metadata of Secrets labelled hookpostv1.LabelSigningSecret=true (a label-selected, metadata-only watch; see
// CacheOptions), and a Secret's data is read from the API server once per resourceVersion and kept here. An
// operator that watched whole Secrets would hold every credential in the cluster in memory; one that watched all
// Secret metadata would still hold every Secret's last-applied-configuration, which kubectl fills with its data.
type Secrets struct {
	// Metadata reads PartialObjectMetadata of Secrets, and whole CA bundle ConfigMaps (ReadTLS), from the
	// manager's cache.
	Metadata client.Reader
	// Direct reads from the API server (the manager's APIReader).
	Direct client.Reader

	mu     sync.Mutex
	values map[types.NamespacedName]*corev1.Secret
}

// NewSecrets returns a Secrets reading metadata from cached and data from direct.
func NewSecrets(cached, direct client.Reader) *Secrets {
	return &Secrets{Metadata: cached, Direct: direct, values: map[types.NamespacedName]*corev1.Secret{}}
}

// Get returns the Secret, or a NotFound error. The result is shared: callers must not modify it.
func (s *Secrets) Get(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	// Read, never modified: no copy of the cached metadata (with its managedFields) on every attempt.
	if err := s.Metadata.Get(ctx, key, m, client.UnsafeDisableDeepCopy); err != nil {
		s.mu.Lock()
		delete(s.values, key)
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Lock()
	v, ok := s.values[key]
	s.mu.Unlock()
	if ok && v.ResourceVersion == m.ResourceVersion {
		return v, nil
	}
	fresh := &corev1.Secret{}
	if err := s.Direct.Get(ctx, key, fresh); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.values[key] = fresh
	s.mu.Unlock()
	return fresh, nil
}

// Unlabeled reports whether the Secret at key exists without LabelSigningSecret=true, which is why the cache,
// which watches only labelled Secrets, does not hold it. It reads the metadata only, from the API server: the data
// of a Secret nobody labelled for Hookpost is not read.
func (s *Secrets) Unlabeled(ctx context.Context, key types.NamespacedName) (bool, error) {
	return s.unlabeled(ctx, key, "Secret", SigningSecretSelector)
}

// unlabeled reports whether the object of kind (a core kind: Secret, ConfigMap) at key exists without the labels
// selector asks for.
func (s *Secrets) unlabeled(ctx context.Context, key types.NamespacedName, kind string, selector labels.Selector) (bool, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	if err := s.Direct.Get(ctx, key, m); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return !selector.Matches(labels.Set(m.Labels)), nil
}

// GetDirect reads the whole Secret from the API server, bypassing the cache and the kept values. The subscription
// controller uses it for the Secret it generates, which the cache does not show yet right after its creation, nor
// at all when it was generated before Hookpost labelled its Secrets.
func (s *Secrets) GetDirect(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	sec := &corev1.Secret{}
	if err := s.Direct.Get(ctx, key, sec); err != nil {
		return nil, err
	}
	return sec, nil
}

// Keys returns the keys a subscription in namespace whose status records recorded (status.signingKeys) signs with
// at now, from the Secret ref names (KeysFor); Current is "" when the Secret or its key does not exist (yet).
func (s *Secrets) Keys(ctx context.Context, namespace string, ref *hookpostv1.SecretKeyRef, recorded []hookpostv1.SigningKey, now time.Time) (signing.Keys, error) {
	sec, err := s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name})
	if err != nil {
		return signing.Keys{}, client.IgnoreNotFound(err)
	}
	return KeysFor(recorded, sec.Data, ref.Key, now), nil
}
