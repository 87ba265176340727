package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ledger"
)

// SourceReplayer re-reads the operator's event sources for WebhookReplays with spec.source. Ingest implements it,
// with the matching it applies to new events, so this package needs no source package.
type SourceReplayer interface {
	// Replay re-reads req.Kind's events taken in at or after req.Since and before req.Until, matches each against
	// the subscriptions of req.Namespace (only req.Subscription, when set) as ingest matches a new event, tenant
	// isolation included, and returns the delivery of every match req.Keep accepts, built and sealed as ingest
	// builds it, in source order, at most req.Limit. It returns an error wrapping ErrSourceNotConfigured when the
	// operator does not read req.Kind.
	Replay(ctx context.Context, req SourceReplayRequest) ([]*hookpostv1.WebhookDelivery, error)
}

// SourceReplayRequest is what a WebhookReplay re-reads from a source.
type SourceReplayRequest struct {
	Kind                    hookpostv1.ReplaySourceKind
	Namespace, Subscription string
	Since, Until            time.Time
	// Keep reports whether the replay selects a delivery (its selector's event types, tenants and event time).
	Keep  func(*hookpostv1.WebhookDelivery) bool
	Limit int
}

// ErrSourceNotConfigured: spec.source names a source the operator does not read.
var ErrSourceNotConfigured = errors.New("the operator does not read this source")

// external returns the deliveries rp replays that do not come from the cache: those re-read from its source
// (spec.source), or those pruned beyond the history limits that the ledger kept. They are read once per replay and
// process (at most spec.limit), not on each reconcile: the progress is on the objects, so after a restart they are
// read again, the same way (events taken in, or objects created, before the replay), and those already made are
// found among the objects.
func (r *WebhookReplayReconciler) external(ctx context.Context, rp *hookpostv1.WebhookReplay) (*replayRead, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if read, ok := r.read[rp.UID]; ok {
		return read, nil
	}
	var (
		ds  []*hookpostv1.WebhookDelivery
		err error
	)
	switch {
	case rp.Spec.Source != nil && r.Sources == nil:
		err = fmt.Errorf("spec.source.kind %s: %w", rp.Spec.Source.Kind, ErrSourceNotConfigured)
	case rp.Spec.Source != nil:
		ds, err = r.Sources.Replay(ctx, SourceReplayRequest{
			Kind: rp.Spec.Source.Kind, Namespace: rp.Namespace, Subscription: rp.Spec.Selector.SubscriptionName,
			// The creation time has whole seconds: events taken in during the second the replay was created count.
			Since: rp.Spec.Source.Since.Time, Until: rp.CreationTimestamp.Add(time.Second), Limit: int(limitOf(rp)),
			Keep: func(d *hookpostv1.WebhookDelivery) bool {
				return replaySelects(rp.Spec.Selector, rp.CreationTimestamp.Time, d)
			},
		})
	case r.Pruned != nil:
		ds, err = r.pruned(ctx, rp)
	}
	if err != nil {
		return nil, err
	}
	if r.read == nil {
		r.read = map[types.UID]*replayRead{}
	}
	read := &replayRead{key: client.ObjectKeyFromObject(rp), deliveries: ds, made: map[string]bool{}}
	r.read[rp.UID] = read
	return read, nil
}

// replayRead is what external read for one replay, and which of those deliveries this process made.
type replayRead struct {
	// key is the replay's, so a deleted replay's reads can be dropped.
	key        types.NamespacedName
	deliveries []*hookpostv1.WebhookDelivery
	// made holds the names of the deliveries made, and whether the cache has shown each since: one pruned again
	// before the replay completes (its history limit is lower than the replay's size) is not made a second time,
	// and one not shown yet is still on its way.
	made map[string]bool
}

// madeState reports whether this process made the delivery named name for the replay and, when it did, records
// whether its object exists now; unseen is true while it was made and has never been seen.
func (rr *replayRead) madeState(mu *sync.Mutex, name string, exists bool) (made, unseen bool) {
	mu.Lock()
	defer mu.Unlock()
	seen, made := rr.made[name]
	if made && exists && !seen {
		rr.made[name], seen = true, true
	}
	return made, made && !seen
}

// forget drops what external read for a replay that is complete.
func (r *WebhookReplayReconciler) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.read, uid)
}

// forgetDeleted drops what external read for the replay key, which is gone.
func (r *WebhookReplayReconciler) forgetDeleted(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for uid, read := range r.read {
		if read.key == key {
			delete(r.read, uid)
		}
	}
}

// pruned reads the pruned deliveries rp selects from the ledger and makes them again for their subscriptions as
// they are now. One whose subscription is gone has nobody to go to; under tenant isolation, one whose tenant the
// namespace is no longer granted is left out, as ingest would leave out a new event of that tenant.
func (r *WebhookReplayReconciler) pruned(ctx context.Context, rp *hookpostv1.WebhookReplay) ([]*hookpostv1.WebhookDelivery, error) {
	sel := rp.Spec.Selector
	q := ledger.PrunedQuery{Namespace: rp.Namespace, Subscription: sel.SubscriptionName, CreatedBefore: rp.CreationTimestamp.Time,
		EventTypes: sel.EventTypes, Tenants: sel.Tenants, Limit: int(limitOf(rp))}
	for _, p := range sel.Phases {
		q.Phases = append(q.Phases, string(p))
	}
	for _, reason := range sel.Reasons {
		q.Reasons = append(q.Reasons, string(reason))
	}
	if sel.From != nil {
		q.From = sel.From.Time
	}
	if sel.To != nil {
		q.To = sel.To.Time
	}
	kept, err := r.Pruned.Pruned(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read pruned deliveries from the ledger: %w", err)
	}
	var grant *TenantGrant
	if r.TenantIsolation {
		ns, err := ReadNamespace(ctx, r.Client, rp.Namespace)
		if err != nil {
			return nil, err
		}
		g := TenantGrant{}
		if ns != nil {
			g = TenantGrantOf(ns)
		}
		grant = &g
	}
	subs := map[string]types.UID{}
	var out []*hookpostv1.WebhookDelivery
	for _, p := range kept {
		uid, ok := subs[p.Subscription]
		if !ok {
			sub := &hookpostv1.WebhookSubscription{}
			switch err := r.Get(ctx, types.NamespacedName{Namespace: rp.Namespace, Name: p.Subscription}, sub); {
			case apierrors.IsNotFound(err):
			case err != nil:
				return nil, fmt.Errorf("get subscription %s: %w", p.Subscription, err)
			case sub.DeletionTimestamp == nil:
				uid = sub.UID
			}
			subs[p.Subscription] = uid
		}
		if uid == "" || (grant != nil && !grant.Allows(p.TenantID)) {
			continue
		}
		if d := DeliveryOfPruned(p, uid, r.Sealer); replaySelects(sel, rp.CreationTimestamp.Time, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// create makes d, a delivery rp replays that has no object, already marked as sent by rp and accepted: its first
// attempt is the replay, and the seal NewDelivery set makes it a real event. An object made meanwhile (by ingest,
// or by this replay before the cache showed it) is left to the next reconcile, which finds it among the objects.
func (r *WebhookReplayReconciler) create(ctx context.Context, rp *hookpostv1.WebhookReplay, built *hookpostv1.WebhookDelivery) error {
	r.mu.Lock()
	if read := r.read[rp.UID]; read != nil {
		read.made[built.Name] = false
	}
	r.mu.Unlock()
	d := built.DeepCopy()
	d.Status = hookpostv1.WebhookDeliveryStatus{}
	d.CreationTimestamp = metav1.Time{}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	value := hookpostv1.ReplayValue(rp.Name, string(rp.UID), 0)
	d.Annotations[hookpostv1.AnnotationReplay], d.Annotations[hookpostv1.AnnotationReplayed] = value, value
	if err := r.Create(ctx, d); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("make delivery %s again: %w", d.Name, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Delivery made again for a replay", "deliveryName", d.Name)
	return nil
}

// madeByReplay reports whether d is a delivery external built, which has no object yet.
func madeByReplay(d *hookpostv1.WebhookDelivery) bool { return d.UID == "" }
