package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ledger"
)

// +kubebuilder:rbac:groups=webhooks.hookpost.io,resources=webhookreplays,verbs=get;list;watch
// +kubebuilder:rbac:groups=webhooks.hookpost.io,resources=webhookreplays/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=webhooks.hookpost.io,resources=webhookdeliveries,verbs=get;list;watch;create;patch;deliver-events

// WebhookReplayReconciler replays the deliveries a WebhookReplay selects at its declared rate, by setting their
// replay annotation to the replay's value (hookpostv1.ReplayValue); the delivery controller sends them. A selected
// delivery without an object (pruned, kept in the ledger; or a match re-read from a source) is made again with
// the value already set. The deliveries carry the progress: one with the value was sent, so a restart resumes where
// the replay stood.
type WebhookReplayReconciler struct {
	client.Client
	// APIReader reads a replay from the API server before it starts, so a stale cache does not start it twice.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// Sealer seals the deliveries made again from the ledger, so they are sent as real events.
	Sealer *Sealer
	// Pruned holds the deliveries pruned beyond the history limits; nil when the operator has no ledger.
	Pruned ledger.PrunedStore
	// Sources re-reads the event sources (spec.source); nil when the operator reads none.
	Sources SourceReplayer
	// TenantIsolation leaves out pruned deliveries of tenants the namespace is no longer granted.
	TenantIsolation bool

	// read holds what external read per running replay (by UID).
	mu   sync.Mutex
	read map[types.UID]*replayRead
}

// Reconcile follows the house skeleton: get, snapshot, one deferred status patch, phases.
func (r *WebhookReplayReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	rp := &hookpostv1.WebhookReplay{}
	if err := r.Get(ctx, req.NamespacedName, rp); err != nil {
		if apierrors.IsNotFound(err) {
			r.forgetDeleted(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if meta.IsStatusConditionTrue(rp.Status.Conditions, hookpostv1.ConditionComplete) {
		r.forget(rp.UID)
		return ctrl.Result{}, nil
	}
	before := rp.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(before.Status, rp.Status) {
			return
		}
		if err := r.Status().Patch(ctx, rp, client.MergeFrom(before)); err != nil {
			retErr = fmt.Errorf("patch replay status: %w", err)
		}
	}()

	sent, candidates, underway, err := r.deliveries(ctx, rp)
	if errors.Is(err, ErrSourceNotConfigured) {
		// Only a WebhookReplay naming a source the operator reads can run; spec is immutable.
		c := metav1.Condition{Type: hookpostv1.ConditionComplete, Status: metav1.ConditionFalse, Reason: hookpostv1.ReasonSourceNotConfigured,
			ObservedGeneration: rp.Generation, Message: fmt.Sprintf("%v: the operator reads the outbox with --postgres-dsn and JetStream with --nats-url; create a WebhookReplay whose spec.source.kind names a source it reads", err)}
		if prev := meta.FindStatusCondition(rp.Status.Conditions, hookpostv1.ConditionComplete); prev == nil || prev.Reason != c.Reason {
			r.event(rp, corev1.EventTypeWarning, c.Reason, "%s", c.Message)
		}
		meta.SetStatusCondition(&rp.Status.Conditions, c)
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	if rp.Status.StartTime == nil {
		// The cache may not hold the status this controller wrote at the start yet: read it before starting again.
		if err := r.APIReader.Get(ctx, req.NamespacedName, rp); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("read replay: %w", err))
		}
		before = rp.DeepCopy()
	}
	if rp.Status.StartTime == nil {
		rp.Status.StartTime = &metav1.Time{Time: now}
		rp.Status.Selected = int32(min(len(sent)+len(candidates), int(limitOf(rp))))
		ctrl.LoggerFrom(ctx).Info("Replay started", "selected", rp.Status.Selected)
		r.event(rp, corev1.EventTypeNormal, hookpostv1.ReasonReplayStarted, "%d deliveries selected; replaying at most %d per second", rp.Status.Selected, perSecondOf(rp))
	}
	tally := tallyReplayed(sent)
	// Deliveries made and not in the cache yet were sent; the watch brings them, and their outcome, back here.
	tally.sent += underway

	if remaining := rp.Status.Selected - tally.sent; remaining > 0 && len(candidates) > 0 {
		n, wait := replayBudget(perSecondOf(rp), rp.Status.StartTime.Time, now, tally.sent)
		n = min(n, remaining, int32(len(candidates)))
		for _, d := range candidates[:n] {
			send := r.send
			if madeByReplay(d) {
				send = r.create
			}
			if err := send(ctx, rp, d); err != nil {
				rp.Status.Sent = tally.sent
				return ctrl.Result{}, err
			}
			tally.sent++
		}
		if tally.sent < rp.Status.Selected {
			if wait == 0 {
				wait = time.Second / time.Duration(perSecondOf(rp))
			}
			res = ctrl.Result{RequeueAfter: wait}
		}
	}
	rp.Status.Sent, rp.Status.Succeeded, rp.Status.Failed = tally.sent, tally.succeeded, tally.failed
	if tally.sent < rp.Status.Selected && len(candidates) == 0 {
		// Selected deliveries vanished (pruned or deleted) before they were sent: there is nothing left to send.
		rp.Status.Selected = tally.sent
	}
	c := completeCondition(rp.Status, rp.Generation)
	meta.SetStatusCondition(&rp.Status.Conditions, c)
	if c.Status == metav1.ConditionTrue {
		r.forget(rp.UID)
		rp.Status.CompletionTime = &metav1.Time{Time: now}
		ctrl.LoggerFrom(ctx).Info("Replay complete", "reason", c.Reason, "sent", tally.sent, "failed", tally.failed)
		r.event(rp, corev1.EventTypeNormal, c.Reason, "%s", c.Message)
	}
	// Replayed deliveries that finish wake the replay (SetupWithManager), so nothing else needs a requeue.
	return res, nil
}

// deliveries returns the namespace's deliveries this replay has sent, and those it selects and has not sent yet,
// oldest event first. The objects come from the cache, so a replay of thousands of deliveries lists no API server.
// Without spec.source, the candidates are the objects the selector picks and the pruned deliveries the ledger kept
// that have no object; with it, the matches re-read from the source: an object's, when it has one, else the
// delivery to make.
// underway counts the deliveries made that the cache does not show yet.
func (r *WebhookReplayReconciler) deliveries(ctx context.Context, rp *hookpostv1.WebhookReplay) (sent, candidates []*hookpostv1.WebhookDelivery, underway int32, err error) {
	opts := []client.ListOption{client.InNamespace(rp.Namespace), client.UnsafeDisableDeepCopy}
	if s := rp.Spec.Selector.SubscriptionName; s != "" {
		opts = append(opts, client.MatchingFields{IndexDeliverySubscription: s})
	}
	list := &hookpostv1.WebhookDeliveryList{}
	if err := r.List(ctx, list, opts...); err != nil {
		return nil, nil, 0, fmt.Errorf("list deliveries: %w", err)
	}
	external, err := r.external(ctx, rp)
	if err != nil {
		return nil, nil, 0, err
	}
	objects := make(map[string]*hookpostv1.WebhookDelivery, len(list.Items))
	sentNames := map[string]bool{}
	for i := range list.Items {
		d := &list.Items[i]
		objects[d.Name] = d
		name, uid, _, ok := hookpostv1.ParseReplayValue(d.Annotations[hookpostv1.AnnotationReplay])
		switch {
		case ok && name == rp.Name && uid == string(rp.UID):
			sent = append(sent, d)
			sentNames[d.Name] = true
		case rp.Spec.Source == nil && replaySelects(rp.Spec.Selector, rp.CreationTimestamp.Time, d):
			candidates = append(candidates, d)
		}
	}
	for _, d := range external.deliveries {
		o, exists := objects[d.Name]
		made, unseen := external.madeState(&r.mu, d.Name, exists)
		switch {
		case unseen:
			underway++
		case !exists && !made:
			candidates = append(candidates, d)
		case exists && rp.Spec.Source != nil && !sentNames[d.Name]:
			// The match has an object: the replay annotation sends it again, history kept.
			candidates = append(candidates, o)
		}
	}
	sortOldestEventFirst(candidates)
	return sent, candidates, underway, nil
}

// send sets d's replay annotation to the replay's value. d is the cache's object: the patch is computed on a copy.
func (r *WebhookReplayReconciler) send(ctx context.Context, rp *hookpostv1.WebhookReplay, cached *hookpostv1.WebhookDelivery) error {
	d := cached.DeepCopy()
	patch := client.MergeFrom(cached)
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[hookpostv1.AnnotationReplay] = hookpostv1.ReplayValue(rp.Name, string(rp.UID), d.Status.Attempts)
	if err := r.Patch(ctx, d, patch); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("replay delivery %s: %w", d.Name, err))
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Delivery replay requested", "deliveryName", d.Name)
	return nil
}

func (r *WebhookReplayReconciler) event(rp *hookpostv1.WebhookReplay, kind, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(rp, nil, kind, reason, "Replay", format, args...)
	}
}

func perSecondOf(rp *hookpostv1.WebhookReplay) int32 {
	if rp.Spec.Rate.PerSecond > 0 {
		return rp.Spec.Rate.PerSecond
	}
	return hookpostv1.DefaultReplayPerSecond
}

func limitOf(rp *hookpostv1.WebhookReplay) int32 {
	if rp.Spec.Limit > 0 {
		return rp.Spec.Limit
	}
	return hookpostv1.DefaultReplayLimit
}

// SetupWithManager watches replays and the deliveries they replayed, so a replayed delivery that finishes updates
// its replay's counters.
func (r *WebhookReplayReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&hookpostv1.WebhookReplay{}).
		Watches(&hookpostv1.WebhookDelivery{}, handler.EnqueueRequestsFromMapFunc(replayOfDelivery),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
				_, _, _, ok := hookpostv1.ParseReplayValue(o.GetAnnotations()[hookpostv1.AnnotationReplay])
				return ok
			}))).
		Named("webhookreplay").
		Complete(r)
}

// replayOfDelivery maps a delivery to the WebhookReplay its replay annotation names.
func replayOfDelivery(_ context.Context, o client.Object) []reconcile.Request {
	name, _, _, ok := hookpostv1.ParseReplayValue(o.GetAnnotations()[hookpostv1.AnnotationReplay])
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}
