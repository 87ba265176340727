package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/signing"
)

// WebhookSubscriptionReconciler resolves (or generates) a subscription's signing secret, keeps Ready current,
// summarises its deliveries into status and deletes finished deliveries beyond the history limits.
type WebhookSubscriptionReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Secrets reads signing Secrets (metadata cached, data read once per change).
	Secrets *Secrets
	// TenantIsolation sets the TenantsGranted condition from the namespace's AnnotationTenants.
	TenantIsolation bool
	// Breakers holds the circuits the CircuitOpen condition reports; nil reports none.
	Breakers *delivery.Breakers
	// Ledger is written (ledger.Flush) before Failed deliveries beyond spec.history.failedLimit are pruned, so a
	// pruned failure's attempts are in the ledger; ledger.Discard when none is configured.
	Ledger ledger.Recorder
	// Pruned keeps the deliveries pruned beyond the history limits, with their events, before their objects are
	// deleted, so a WebhookReplay can make them again; nil when the operator has no ledger.
	Pruned ledger.PrunedStore
	// APIReader reads a delivery about to be pruned whole: the cache keeps finished ones without their data.
	APIReader client.Reader

	// pruned holds the UIDs of deliveries this process deleted beyond the history limits (UID -> time.Time), so
	// a reconcile that reads a cache which still shows them neither counts nor prunes them twice.
	pruned sync.Map
}

// prunedMemory is how long a pruned delivery's UID is remembered; the cache sees a deletion long before.
const prunedMemory = 10 * time.Minute

// failedPruneRetry is how soon pruning Failed deliveries is tried again after the ledger could not be written.
const failedPruneRetry = 30 * time.Second

// +kubebuilder:rbac:groups=webhooks.hookpost.io,resources=webhooksubscriptions,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=webhooks.hookpost.io,resources=webhooksubscriptions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=webhooks.hookpost.io,resources=webhooksubscriptions/finalizers,verbs=update
// +kubebuilder:rbac:groups=webhooks.hookpost.io,resources=webhookdeliveries,verbs=get;list;watch;create;update;patch;delete;deliver-events
// +kubebuilder:rbac:groups=webhooks.hookpost.io,resources=webhookdeliveries/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconcile follows the house skeleton: get, snapshot, one deferred status patch, phases.
func (r *WebhookSubscriptionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	sub := &hookpostv1.WebhookSubscription{}
	if err := r.Get(ctx, req.NamespacedName, sub); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := sub.DeepCopy()
	var prune []hookpostv1.WebhookDelivery
	var clearGone bool
	defer func() {
		if retErr == nil {
			sub.Status.ObservedGeneration = sub.Generation
		}
		if !equality.Semantic.DeepEqual(before.Status, sub.Status) {
			// Optimistic lock: the pruned counters are increments, and a write based on a stale read would lose
			// some. A conflict requeues with a fresh read; nothing was deleted yet.
			err := r.Status().Patch(ctx, sub, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
			switch {
			case apierrors.IsConflict(err):
				// Another write landed first (usually our own, not yet in the cache): read again shortly. This
				// replaces a terminal error too, or a status that says why would never be written.
				res, retErr = ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
				return
			case err != nil && !apierrors.IsNotFound(err):
				res, retErr = ctrl.Result{}, errors.Join(retErr, fmt.Errorf("patch subscription status: %w", err))
				return
			case err != nil:
				return
			}
		}
		if clearGone && goneRecorded(sub) {
			r.Breakers.ClearGone(delivery.CircuitKey(sub.Namespace, sub.Name))
		}
		// Deletions follow the status write that counts them.
		retErr = errors.Join(retErr, r.deletePruned(ctx, prune))
	}()

	secret, err := r.resolveSecret(ctx, sub)
	if err != nil {
		return ctrl.Result{}, err
	}
	sub.Status.SigningSecretRef = secret.ref
	material, err := r.Secrets.ReadTLS(ctx, sub.Namespace, sub.Spec.TLS)
	if err != nil {
		return ctrl.Result{}, err
	}
	material = material.Check(sub.Spec.TLS)
	circuit := r.Breakers.State(delivery.CircuitKey(sub.Namespace, sub.Name), r.Clock.Now())
	gone := circuit.Gone
	ready := readyCondition(sub, secret, material, gone || goneRecorded(before))
	r.setReady(sub, before, ready)
	// Once the status write records the 410 in Ready, the condition keeps it (for this generation).
	clearGone = gone
	if err := r.setTenantsGranted(ctx, sub, before); err != nil {
		return ctrl.Result{}, err
	}
	r.setCircuitOpen(sub, before, circuit)

	var failedKept bool
	if prune, failedKept, err = r.summariseDeliveries(ctx, sub); err != nil {
		return ctrl.Result{}, err
	}
	if secret.reason != "" {
		// A human has to create or fix the Secret; the Secret watch brings us back when they do.
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("signing secret: %s", secret.message))
	}
	if ready.Reason == hookpostv1.ReasonInvalidFilter || ready.Reason == hookpostv1.ReasonInvalidOrderingKey {
		// Only a spec change can fix it, and that brings us back.
		return ctrl.Result{}, reconcile.TerminalError(errors.New(ready.Message))
	}
	if material.Reason != "" {
		// The same for spec.tls; the Secret and ConfigMap watches bring us back.
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("spec.tls: %s", material.Message))
	}
	expiry, err := r.trackRotation(ctx, sub, secret)
	if err != nil {
		return ctrl.Result{}, err
	}
	if failedKept && (expiry == 0 || expiry > failedPruneRetry) {
		expiry = failedPruneRetry
	}
	return ctrl.Result{RequeueAfter: expiry}, nil
}

// setReady sets Ready and emits an Event only when its status flips.
func (r *WebhookSubscriptionReconciler) setReady(sub, before *hookpostv1.WebhookSubscription, c metav1.Condition) {
	prev := meta.FindStatusCondition(before.Status.Conditions, hookpostv1.ConditionReady)
	meta.SetStatusCondition(&sub.Status.Conditions, c)
	// A new subscription becoming Ready is not news; one that starts out not Ready is.
	if r.Recorder == nil || (prev != nil && prev.Status == c.Status) || (prev == nil && c.Status == metav1.ConditionTrue) {
		return
	}
	kind := corev1.EventTypeNormal
	if c.Status != metav1.ConditionTrue {
		kind = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(sub, nil, kind, c.Reason, "Ready", "Ready is %s: %s", c.Status, c.Message)
}

// setTenantsGranted sets TenantsGranted from the namespace's grant under tenant isolation (removes it otherwise),
// with an Event when it flips.
func (r *WebhookSubscriptionReconciler) setTenantsGranted(ctx context.Context, sub, before *hookpostv1.WebhookSubscription) error {
	if !r.TenantIsolation {
		meta.RemoveStatusCondition(&sub.Status.Conditions, hookpostv1.ConditionTenantsGranted)
		return nil
	}
	ns, err := ReadNamespace(ctx, r.Client, sub.Namespace)
	if err != nil {
		return err
	}
	if ns == nil {
		// A subscription's namespace exists while it does: the cache is still catching up.
		return fmt.Errorf("namespace %s not in the cache yet", sub.Namespace)
	}
	c := tenantsCondition(sub, TenantGrantOf(ns))
	prev := meta.FindStatusCondition(before.Status.Conditions, hookpostv1.ConditionTenantsGranted)
	meta.SetStatusCondition(&sub.Status.Conditions, c)
	if r.Recorder != nil && (prev == nil || prev.Status != c.Status) && !(prev == nil && c.Status == metav1.ConditionTrue) {
		kind := corev1.EventTypeNormal
		if c.Status != metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(sub, nil, kind, c.Reason, "TenantsGranted", "TenantsGranted is %s: %s", c.Status, c.Message)
	}
	return nil
}

// setCircuitOpen sets CircuitOpen from the subscription's circuit, with an Event when it opens or closes.
func (r *WebhookSubscriptionReconciler) setCircuitOpen(sub, before *hookpostv1.WebhookSubscription, circuit delivery.Circuit) {
	prev := meta.FindStatusCondition(before.Status.Conditions, hookpostv1.ConditionCircuitOpen)
	c := circuitCondition(sub, circuit, prev)
	if c == nil || c == prev {
		return
	}
	meta.SetStatusCondition(&sub.Status.Conditions, *c)
	if r.Recorder == nil || (prev != nil && prev.Status == c.Status) {
		return
	}
	kind := corev1.EventTypeNormal
	if c.Status == metav1.ConditionTrue {
		kind = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(sub, nil, kind, c.Reason, "CircuitOpen", "CircuitOpen is %s: %s", c.Status, c.Message)
}

// resolveSecret finds the signing secret, generating one when the spec names none.
func (r *WebhookSubscriptionReconciler) resolveSecret(ctx context.Context, sub *hookpostv1.WebhookSubscription) (secretResolution, error) {
	// One secret keys every signature; its form is the strictest scheme's (whsec_ when StandardWebhooks is among them).
	scheme := signing.SecretScheme(SignaturesOf(sub.Spec.Signing))
	if ref := sub.Spec.Signing.SecretRef; ref != nil {
		key := ref.Key
		if key == "" {
			key = hookpostv1.DefaultSecretKey
		}
		secretKey := types.NamespacedName{Namespace: sub.Namespace, Name: ref.Name}
		s, err := r.Secrets.Get(ctx, secretKey)
		if apierrors.IsNotFound(err) {
			// The cache holds only labelled Secrets. Rather than read an unlabelled one directly (a read without a
			// watch would miss its later changes, and would make the label meaningless), say how to label it; the
			// label brings the Secret into the watch, which brings this subscription back.
			unlabeled, uerr := r.Secrets.Unlabeled(ctx, secretKey)
			if uerr != nil {
				return secretResolution{}, fmt.Errorf("get signing secret %s metadata: %w", ref.Name, uerr)
			}
			if unlabeled {
				return secretResolution{reason: hookpostv1.ReasonSecretNotLabeled,
					message: fmt.Sprintf("Secret %q named in spec.signing.secretRef lacks the label %s=true, and Hookpost reads only Secrets that carry it; label it: kubectl label secret %s -n %s %s=true",
						ref.Name, hookpostv1.LabelSigningSecret, ref.Name, sub.Namespace, hookpostv1.LabelSigningSecret)}, nil
			}
		}
		switch {
		case apierrors.IsNotFound(err):
			return secretResolution{reason: hookpostv1.ReasonSecretNotFound,
				message: fmt.Sprintf("Secret %q named in spec.signing.secretRef does not exist in namespace %s; create it with the signing secret under key %q and the label %s=true", ref.Name, sub.Namespace, key, hookpostv1.LabelSigningSecret)}, nil
		case err != nil:
			return secretResolution{}, fmt.Errorf("get signing secret %s: %w", ref.Name, err)
		}
		value, ok := s.Data[key]
		if !ok || len(value) == 0 {
			return secretResolution{reason: hookpostv1.ReasonSecretKeyMissing,
				message: fmt.Sprintf("Secret %q has no data under key %q; add it, or set spec.signing.secretRef.key to the key that holds the secret", ref.Name, key)}, nil
		}
		for _, k := range []string{key, key + hookpostv1.PreviousKeySuffix} {
			if v, ok := s.Data[k]; ok || k == key {
				if _, err := signing.Key(scheme, string(v)); err != nil {
					return secretResolution{reason: hookpostv1.ReasonSecretInvalid,
						message: fmt.Sprintf("Secret %q key %q cannot sign with scheme %s: %v%s", ref.Name, k, scheme, err, secretFormHint(sub.Spec.Signing, scheme))}, nil
				}
			}
		}
		return withKeyIDs(secretResolution{ref: &hookpostv1.SecretKeyRef{Name: ref.Name, Key: key}}, s.Data), nil
	}
	return r.ensureGeneratedSecret(ctx, sub, scheme)
}

// secretFormHint explains, when StandardWebhooks is only an additional scheme, why a secret the primary scheme would
// accept is refused: the one secret keys every signature, so it needs the whsec_ form.
func secretFormHint(s hookpostv1.Signing, scheme signing.Scheme) string {
	if scheme != signing.SchemeStandardWebhooks || s.Scheme == hookpostv1.SigningSchemeStandardWebhooks {
		return ""
	}
	return "; spec.signing.additional includes StandardWebhooks and one secret keys every signature, so it needs the whsec_<base64> form (HMACSHA256Hex signs with that same string)"
}

// ensureGeneratedSecret creates (or repairs) the Secret Hookpost owns for a subscription without secretRef. It is
// owned by the subscription, so it goes when the subscription goes, and labelled LabelSigningSecret=true, so the
// operator's cache sees it.
func (r *WebhookSubscriptionReconciler) ensureGeneratedSecret(ctx context.Context, sub *hookpostv1.WebhookSubscription, scheme signing.Scheme) (secretResolution, error) {
	ref := &hookpostv1.SecretKeyRef{Name: hookpostv1.GeneratedSecretName(sub.Name), Key: hookpostv1.DefaultSecretKey}
	key := types.NamespacedName{Namespace: sub.Namespace, Name: ref.Name}
	s, err := r.Secrets.Get(ctx, key)
	if apierrors.IsNotFound(err) {
		// Not in the cache: absent, just created and not seen yet, or generated before Hookpost labelled the
		// Secrets it generates (the cache shows only labelled ones). The API server knows which.
		s, err = r.Secrets.GetDirect(ctx, key)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return secretResolution{}, fmt.Errorf("get generated signing secret: %w", err)
	}
	if err == nil {
		if !metav1.IsControlledBy(s, sub) {
			return secretResolution{reason: hookpostv1.ReasonSecretInvalid,
				message: fmt.Sprintf("Secret %q exists but is not owned by this subscription; delete it, or name it in spec.signing.secretRef", ref.Name)}, nil
		}
		_, keyErr := signing.Key(scheme, string(s.Data[ref.Key]))
		labelled := s.Labels[hookpostv1.LabelSigningSecret] == "true"
		if keyErr == nil && labelled {
			return withKeyIDs(secretResolution{ref: ref, generated: true}, s.Data), nil
		}
		s = s.DeepCopy() // the one Secrets holds is shared
		if keyErr != nil {
			// The scheme changed since the secret was generated (a hex secret is not a whsec_ one): generate anew.
			value, genErr := signing.GenerateSecret(scheme)
			if genErr != nil {
				return secretResolution{}, fmt.Errorf("generate signing secret: %w", genErr)
			}
			s.Data = map[string][]byte{ref.Key: []byte(value)}
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[hookpostv1.LabelSigningSecret] = "true"
		if err := r.Update(ctx, s); err != nil {
			return secretResolution{}, fmt.Errorf("update generated signing secret: %w", err)
		}
		return withKeyIDs(secretResolution{ref: ref, generated: true}, s.Data), nil
	}
	value, genErr := signing.GenerateSecret(scheme)
	if genErr != nil {
		return secretResolution{}, fmt.Errorf("generate signing secret: %w", genErr)
	}
	s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Type: corev1.SecretTypeOpaque}
	s.Labels = map[string]string{hookpostv1.LabelSigningSecret: "true"}
	if v := hookpostv1.SubscriptionLabelValue(sub.Name); v != "" {
		s.Labels[hookpostv1.LabelSubscription] = v
	}
	s.Data = map[string][]byte{ref.Key: []byte(value)}
	if err := controllerutil.SetControllerReference(sub, s, r.Scheme()); err != nil {
		return secretResolution{}, fmt.Errorf("own generated signing secret: %w", err)
	}
	if err := r.Create(ctx, s); err != nil {
		return secretResolution{}, fmt.Errorf("create generated signing secret: %w", err)
	}
	ctrl.LoggerFrom(ctx).Info("Generated signing secret", "secretName", ref.Name)
	return withKeyIDs(secretResolution{ref: ref, generated: true}, s.Data), nil
}

// withKeyIDs sets the ids of the secret and of the previous one in data (the signing Secret's) on res.
func withKeyIDs(res secretResolution, data map[string][]byte) secretResolution {
	res.currentID = signing.Fingerprint(string(data[res.ref.Key]))
	if v := data[res.ref.Key+hookpostv1.PreviousKeySuffix]; len(v) > 0 {
		res.previousID = signing.Fingerprint(string(v))
	}
	return res
}

// trackRotation records the signing keys' ids and expiry in status, with an Event when a rotation starts or
// finishes, and returns when to look again (the previous key's expiry; zero when none is pending). At the end of
// an overlap it removes "<key>.previous" from a Secret Hookpost generated; a Secret you own is left as you
// applied it (a GitOps tool would put the key back), and its previous key stays listed as Expired and unused.
func (r *WebhookSubscriptionReconciler) trackRotation(ctx context.Context, sub *hookpostv1.WebhookSubscription, secret secretResolution) (time.Duration, error) {
	overlap := hookpostv1.DefaultRotationOverlap
	if o := sub.Spec.Signing.RotationOverlap; o != nil {
		overlap = o.Duration
	}
	now := r.Clock.Now()
	keys, change := signingKeysStatus(sub.Status.SigningKeys, secret.currentID, secret.previousID, overlap, now)
	if change == rotationFinished && secret.generated && secret.previousID != "" {
		if err := r.dropPrevious(ctx, sub, secret.ref); err != nil {
			return 0, err
		}
		keys = keys[:1]
	}
	sub.Status.SigningKeys = keys
	switch {
	case change == rotationStarted && r.Recorder != nil:
		r.Recorder.Eventf(sub, nil, corev1.EventTypeNormal, hookpostv1.ReasonRotationStarted, "Rotate",
			"signing secret %s replaces %s; both sign until %s (spec.signing.rotationOverlap %s)",
			secret.currentID, secret.previousID, keys[1].ExpiresAt.UTC().Format(time.RFC3339), overlap)
	case change == rotationFinished && r.Recorder != nil:
		r.Recorder.Eventf(sub, nil, corev1.EventTypeNormal, hookpostv1.ReasonRotationFinished, "Rotate",
			"only signing secret %s signs now; the previous secret's overlap ended", secret.currentID)
	}
	for _, k := range keys {
		if k.Role == hookpostv1.SigningKeyPrevious {
			return k.ExpiresAt.Sub(now), nil
		}
	}
	return 0, nil
}

// dropPrevious removes "<key>.previous" from the generated Secret ref names once its overlap ended.
func (r *WebhookSubscriptionReconciler) dropPrevious(ctx context.Context, sub *hookpostv1.WebhookSubscription, ref *hookpostv1.SecretKeyRef) error {
	s, err := r.Secrets.GetDirect(ctx, types.NamespacedName{Namespace: sub.Namespace, Name: ref.Name})
	if err != nil {
		return fmt.Errorf("get generated signing secret: %w", err)
	}
	delete(s.Data, ref.Key+hookpostv1.PreviousKeySuffix)
	if err := r.Update(ctx, s); err != nil {
		return fmt.Errorf("remove the expired previous key from the generated signing secret: %w", err)
	}
	ctrl.LoggerFrom(ctx).Info("Removed the expired previous signing key", "secretName", ref.Name)
	return nil
}

// summariseDeliveries recomputes the counters and returns the finished deliveries beyond the history limits,
// already counted into the pruned counters, for the caller to delete once the status is written. Failed ones
// are pruned only once the ledger holds what this process recorded (their attempts among it): failedKept says
// they were kept because it could not be written.
func (r *WebhookSubscriptionReconciler) summariseDeliveries(ctx context.Context, sub *hookpostv1.WebhookSubscription) (prune []hookpostv1.WebhookDelivery, failedKept bool, err error) {
	list := &hookpostv1.WebhookDeliveryList{}
	// A subscription can have tens of thousands of deliveries in flight and this runs on each of their
	// transitions: read the cache without copying. Nothing here modifies the objects.
	if err := r.List(ctx, list, client.InNamespace(sub.Namespace), client.MatchingFields{IndexDeliverySubscription: sub.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, false, fmt.Errorf("list deliveries: %w", err)
	}
	r.forgetOldPrunes()
	live := list.Items[:0]
	for _, d := range list.Items {
		if _, ok := r.pruned.Load(d.UID); !ok {
			live = append(live, d)
		}
	}
	succeeded, failed := deliveriesToPrune(live, sub.Spec.History)
	if len(failed) > 0 {
		// A Failed delivery's status was written after its attempts were handed to the ledger, but a ledger that
		// was down then still holds them in memory: the object is the only durable record until they are written.
		if err := ledger.Flush(ctx, r.Ledger); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Ledger not written; Failed deliveries beyond the history limit are kept until it is", "kept", len(failed))
			failed, failedKept = nil, true
		}
	}
	if r.Pruned != nil && len(succeeded)+len(failed) > 0 {
		if err := r.keepPruned(ctx, succeeded, failed); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Pruned deliveries not kept in the ledger; deliveries beyond the history limits are kept until they are", "kept", len(succeeded)+len(failed))
			succeeded, failed, failedKept = nil, nil, true
		}
	}
	sub.Status.PrunedSucceeded += int64(len(succeeded))
	sub.Status.PrunedFailed += int64(len(failed))
	prune = append(succeeded, failed...)
	gone := make(map[types.UID]bool, len(prune))
	for _, d := range prune {
		gone[d.UID] = true
	}
	kept := make([]hookpostv1.WebhookDelivery, 0, len(live))
	for _, d := range live {
		if !gone[d.UID] {
			kept = append(kept, d)
		}
	}
	applyDeliveryStats(&sub.Status, computeDeliveryStats(sub.Status, kept))
	return prune, failedKept, nil
}

// keepPruned writes the deliveries about to be pruned that keptWhenPruned selects, with their events, to the
// ledger's table of pruned deliveries (Pruned), so a WebhookReplay can make them again (docs/subscriptions.md,
// "WebhookReplay"). The cache holds finished deliveries without their data (CacheOptions), so each is read whole
// from the API server first: one read next to the delete each already costs. A delivery gone meanwhile needs
// nothing kept.
func (r *WebhookSubscriptionReconciler) keepPruned(ctx context.Context, lists ...[]hookpostv1.WebhookDelivery) error {
	var kept []ledger.Pruned
	for _, list := range lists {
		for i := range list {
			d := &list[i]
			if !keptWhenPruned(d) {
				continue
			}
			if dataStripped(d) {
				whole := &hookpostv1.WebhookDelivery{}
				err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(d), whole)
				if apierrors.IsNotFound(err) || (err == nil && whole.UID != d.UID) {
					continue
				}
				if err != nil {
					return fmt.Errorf("read delivery %s to keep it in the ledger: %w", d.Name, err)
				}
				d = whole
			}
			kept = append(kept, PrunedOf(d))
		}
	}
	return r.Pruned.KeepPruned(ctx, kept)
}

// forgetOldPrunes drops remembered prunes older than prunedMemory: by then the cache has long seen the deletion.
func (r *WebhookSubscriptionReconciler) forgetOldPrunes() {
	now := r.Clock.Now()
	r.pruned.Range(func(uid, at any) bool {
		if now.Sub(at.(time.Time)) > prunedMemory {
			r.pruned.Delete(uid)
		}
		return true
	})
}

// deletePruned deletes deliveries already counted as pruned. A delivery that cannot be deleted now is forgotten
// from the pruned set so a later reconcile deletes it; it is then counted twice, which beats never deleting it.
func (r *WebhookSubscriptionReconciler) deletePruned(ctx context.Context, prune []hookpostv1.WebhookDelivery) error {
	var errs []error
	for i := range prune {
		d := &prune[i]
		r.pruned.Store(d.UID, r.Clock.Now())
		err := r.Delete(ctx, d, client.Preconditions{UID: &d.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			r.pruned.Delete(d.UID)
			errs = append(errs, fmt.Errorf("delete delivery %s beyond the history limit: %w", d.Name, err))
		}
	}
	if len(prune) > 0 {
		ctrl.LoggerFrom(ctx).V(1).Info("Pruned finished deliveries", "count", len(prune))
	}
	return errors.Join(errs...)
}

// SetupWithManager watches subscriptions, their deliveries, the Secrets they sign with and the Secrets and
// ConfigMaps their spec.tls names (ConfigMaps whole: the informer is the one ReadTLS reads through).
// Under tenant isolation it also watches namespaces: a grant changed recomputes their subscriptions' condition.
func (r *WebhookSubscriptionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&hookpostv1.WebhookSubscription{}).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.subscriptionsIndexed(indexSubscriptionSecret))).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.subscriptionsIndexed(indexSubscriptionConfigMap))).
		Watches(&hookpostv1.WebhookDelivery{}, subscriptionOfDeliveryLater())
	if r.Breakers != nil {
		b = b.WatchesRawSource(source.Func(r.circuitChanges))
	}
	if r.TenantIsolation {
		b = b.Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.subscriptionsInNamespace),
			builder.WithPredicates(tenantGrantChanged))
	}
	return b.Named("webhooksubscription").Complete(r)
}

// circuitChanges enqueues the subscription of every circuit that opened, closed or reopened, so its CircuitOpen
// condition follows within a reconcile.
func (r *WebhookSubscriptionReconciler) circuitChanges(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case key := <-r.Breakers.Changed():
				if ns, name, ok := strings.Cut(key, "/"); ok {
					q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
				}
			}
		}
	}()
	return nil
}

// tenantGrantChanged passes namespace events that can change a grant: creation, deletion, and an update of
// AnnotationTenants.
var tenantGrantChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetAnnotations()[hookpostv1.AnnotationTenants] != e.ObjectNew.GetAnnotations()[hookpostv1.AnnotationTenants]
	},
}

func (r *WebhookSubscriptionReconciler) subscriptionsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	subs := &hookpostv1.WebhookSubscriptionList{}
	if err := r.List(ctx, subs, client.InNamespace(o.GetName()), client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List subscriptions of a namespace", "namespace", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(subs.Items))
	for k := range subs.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&subs.Items[k])})
	}
	return reqs
}

// subscriptionsIndexed maps a Secret or ConfigMap to the subscriptions that name it, by index.
func (r *WebhookSubscriptionReconciler) subscriptionsIndexed(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		subs := &hookpostv1.WebhookSubscriptionList{}
		if err := r.List(ctx, subs, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "List subscriptions naming an object", "index", index, "name", o.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(subs.Items))
		for k := range subs.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&subs.Items[k])})
		}
		return reqs
	}
}

// summaryDelay is how long after a delivery changes its subscription's summary is recomputed: the changes of all
// its deliveries within that time make one reconcile and at most one status write, not one each.
const summaryDelay = 500 * time.Millisecond

// subscriptionOfDeliveryLater enqueues a changed delivery's subscription summaryDelay later; the queue keeps one
// entry per subscription, so a burst of deliveries costs one reconcile.
func subscriptionOfDeliveryLater() handler.EventHandler {
	add := func(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if d, ok := o.(*hookpostv1.WebhookDelivery); ok {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.SubscriptionName}}, summaryDelay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
	}
}
