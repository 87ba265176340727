package controller

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/signing"
)

// Why a seal: the admission policy (charts/hookpost/templates/delivery-admission-policy.yaml) keeps hand-made
// deliveries to test events, but a cluster may run without it (older than 1.30, or disabled). The delivery
// controller must then still tell a delivery the operator made from one anybody with create on
// webhookdeliveries made. Who created an object is not recorded on it (managedFields name a field manager any
// client may claim), so the operator seals what it creates: an HMAC, under a key only it reads, over everything
// that decides what a receiver gets. A delivery without a valid seal is sent, but as a test event.

// SealKeyBytes is the size of a generated seal key.
const SealKeyBytes = 32

// sealSecretKey is the key of the seal Secret's data holding the seal key.
const sealSecretKey = "key"

// DefaultSealSecretName is the Secret, in the operator's namespace, holding the key deliveries are sealed with.
const DefaultSealSecretName = "hookpost-delivery-seal"

// Sealer seals the deliveries the operator creates and checks a delivery's seal.
type Sealer struct {
	key []byte
}

// NewSealer returns a Sealer using key; an empty key seals nothing validly, so every delivery is a test one.
func NewSealer(key []byte) *Sealer {
	return &Sealer{key: key}
}

// Seal sets d's seal annotation. d's spec and name must be final. A nil Sealer seals nothing.
func (s *Sealer) Seal(d *hookpostv1.WebhookDelivery) {
	if s == nil {
		return
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[hookpostv1.AnnotationSeal] = signing.Seal(s.key, sealFields(d)...)
}

// Sealed reports whether d carries a valid seal: the operator created it, and nothing the receiver gets changed.
func (s *Sealer) Sealed(d *hookpostv1.WebhookDelivery) bool {
	if s == nil {
		return false
	}
	return signing.VerifySeal(s.key, d.Annotations[hookpostv1.AnnotationSeal], sealFields(d)...)
}

// sealFields are what a seal covers: where the delivery lives and everything that makes its request. Each value
// is taken in the form the API server gives back (occurredAt in seconds, data with its keys sorted and numbers as
// float64), so a seal made before the create verifies on the object read from the cache.
func sealFields(d *hookpostv1.WebhookDelivery) [][]byte {
	digest := sha256.Sum256(sealData(d))
	e := d.Spec.Event
	fields := [][]byte{
		[]byte(d.Namespace), []byte(d.Name), []byte(d.Spec.SubscriptionName),
		[]byte(e.ID), []byte(e.Type), []byte(e.TenantID), []byte(e.Collection),
		[]byte(e.OccurredAt.UTC().Truncate(time.Second).Format(time.RFC3339)),
		digest[:],
	}
	if o := d.Spec.Ordering; o != nil {
		// Where the delivery stands in its key's sequence decides what its successors wait for. Only ordered
		// deliveries seal it, so the seals of the others stay what they were.
		fields = append(fields, []byte(o.Key), []byte(o.Source), []byte(strconv.FormatInt(o.Position, 10)))
	}
	return fields
}

// LoadSealKey reads the seal key from Secret namespace/name, creating the Secret with a random key when it does
// not exist. Every replica reads the same Secret; when two create it at once, the loser reads the winner's. c must
// not be a cached client (the manager's cache is not running yet when the operator starts).
func LoadSealKey(ctx context.Context, c client.Client, namespace, name string) ([]byte, error) {
	s := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
	if apierrors.IsNotFound(err) {
		key := make([]byte, SealKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate seal key: %w", err)
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app.kubernetes.io/name": "hookpost", "app.kubernetes.io/component": "delivery-seal"}},
			Data:       map[string][]byte{sealSecretKey: key},
		}
		err = c.Create(ctx, s)
		if apierrors.IsAlreadyExists(err) {
			err = c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read seal key Secret %s/%s: %w", namespace, name, err)
	}
	key := s.Data[sealSecretKey]
	if len(key) < 16 {
		return nil, fmt.Errorf("seal key Secret %s/%s has no key of at least 16 bytes under %q: delete the Secret and the operator makes a new one", namespace, name, sealSecretKey)
	}
	return key, nil
}

// sealData is a delivery's data in the form it has after a round trip through the API server, which decodes it
// (numbers as float64, objects as maps) and encodes it again with sorted keys. Data that is not JSON is sealed
// as it is; the controller fails such a delivery as InvalidRequest anyway.
func sealData(d *hookpostv1.WebhookDelivery) []byte {
	if d.Spec.Data == nil || len(d.Spec.Data.Raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(d.Spec.Data.Raw, &v); err != nil {
		return d.Spec.Data.Raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return d.Spec.Data.Raw
	}
	return out
}
