package ingest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/source"
)

// DefaultRefusalQuiet is RefusalsOptions.Quiet's default.
const DefaultRefusalQuiet = time.Minute

// verdictTTL is how long Refusals trusts its answer to "may the operator create deliveries in other
// namespaces?", so a flood of Forbidden creates in one namespace costs a few access reviews.
const verdictTTL = 10 * time.Second

// namespacesReviewed bounds the other namespaces whose access is reviewed for one Forbidden namespace.
const namespacesReviewed = 3

// refusalMessageMax bounds the API server's message quoted in a condition or Event (an Event note holds 1 KiB).
const refusalMessageMax = 512

// RefusalsOptions configure Refusals.
type RefusalsOptions struct {
	// Client writes the subscription's DeliveriesRefused condition; Reader reads subscriptions (the manager's
	// cache); Direct reads one again after a write conflict (the API reader).
	Client client.Client
	Reader client.Reader
	Direct client.Reader
	// Events gets the Warning Events on the subscription; nil emits none.
	Events events.EventRecorder
	// Ledger gets a row with outcome refused per refused (event, subscription); nil keeps none.
	Ledger ledger.Recorder
	// Clock paces Events and the condition (default the real clock).
	Clock clock.PassiveClock
	// Quiet is at most one Warning Event per subscription per Quiet (the next one counts those left out), and
	// how long after its last refusal a subscription's condition turns False on a create that succeeds
	// (default DefaultRefusalQuiet).
	Quiet time.Duration
}

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=selfsubjectaccessreviews,verbs=create

// Refusals reports the (event, subscription) pairs whose WebhookDelivery the API server refused for good, so that
// a refusal scoped to one subscription's namespace is seen where a person looks without holding back the events
// of every other namespace: a ledger row with outcome refused, a Warning Event on the subscription (at most one
// per Quiet, counting the rest), the DeliveriesRefused condition, and the log (at error level as often as the
// Events, every refusal at V(1)). The metric
// hookpost_deliveries_refused_total is counted where the refusal is classified. A nil *Refusals only logs.
type Refusals struct {
	o RefusalsOptions

	mu        sync.Mutex
	subs      map[types.UID]*refusalState
	verdicts  map[string]verdict   // by Forbidden namespace
	createdIn map[string]time.Time // when a create in a namespace last got past authorization and admission

	// reviewing lets one review run at a time, so a batch full of Forbidden creates asks once.
	reviewing sync.Mutex
}

// verdict is whether the operator may create deliveries outside a namespace where it is Forbidden, and when that
// was asked.
type verdict struct {
	elsewhere bool
	at        time.Time
}

// refusalState is what this process last did about one subscription's refusals.
type refusalState struct {
	lastRefused time.Time
	lastEvent   time.Time
	unreported  int    // refusals since lastEvent that no Event counted
	condition   string // the reason this process last wrote with DeliveriesRefused=True; "" after it wrote False
	conditionAt time.Time
}

// NewRefusals returns Refusals configured by o.
func NewRefusals(o RefusalsOptions) *Refusals {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Quiet <= 0 {
		o.Quiet = DefaultRefusalQuiet
	}
	if o.Ledger == nil {
		o.Ledger = ledger.Discard
	}
	// Notes quote the API server's message; cut them to what the events API accepts, as the controllers do.
	o.Events = controller.FitNotes(o.Events)
	if o.Direct == nil {
		o.Direct = o.Reader
	}
	return &Refusals{o: o, subs: map[types.UID]*refusalState{}, verdicts: map[string]verdict{}, createdIn: map[string]time.Time{}}
}

// Refused reports that the API server refused, for reason (a refusal() value), the delivery of ev to sub. first is
// the first attempt already made and failed, nil when none was made. Nothing here fails the batch: the
// refusal is final, and a report that cannot be written is logged.
func (r *Refusals) Refused(ctx context.Context, sub *Subscription, ev *source.Event, reason string, refusedBy error, first *controller.FirstAttempt) {
	log := ctrl.LoggerFrom(ctx).WithValues("eventID", ev.ID, "eventType", ev.Type, "subscriptionName", sub.Name, "namespace", sub.Namespace, "reason", reason)
	if r == nil {
		log.Error(refusedBy, "Delivery refused; event not delivered to this subscription")
		return
	}
	r.record(sub, ev, refusedBy, first)
	now := r.o.Clock.Now()
	r.mu.Lock()
	st := r.state(types.UID(sub.UID))
	st.lastRefused = now
	st.unreported++
	emit := st.lastEvent.IsZero() || now.Sub(st.lastEvent) >= r.o.Quiet
	n := st.unreported
	if emit {
		st.lastEvent, st.unreported = now, 0
	}
	// The condition is written once per reason, and again at most once per Quiet while the cache has not caught
	// up with the write, so a flood of refusals makes few writes.
	write := st.condition != conditionReason(reason) || now.Sub(st.conditionAt) >= r.o.Quiet
	if write {
		st.condition, st.conditionAt = conditionReason(reason), now
	}
	r.mu.Unlock()

	// Logged at error level as often as an Event is made; every one at V(1), for the flood's event ids.
	if emit {
		log.Error(refusedBy, "Delivery refused; event not delivered to this subscription", "refusedSinceLastReport", n)
	} else {
		log.V(1).Info("Delivery refused; event not delivered to this subscription", "error", refusedBy.Error())
	}
	obj := r.cached(ctx, sub)
	if obj == nil {
		return // deleted: its deliveries would go with it
	}
	msg := fmt.Sprintf("The API server refused the WebhookDelivery of event %s (%s): %s", ev.ID, ev.Type, truncate(refusedBy.Error(), refusalMessageMax))
	if reason == refusalUnfinishedCap {
		msg = fmt.Sprintf("Event %s (%s) was not delivered to this subscription: %s", ev.ID, ev.Type, truncate(refusedBy.Error(), refusalMessageMax))
	}
	if emit && r.o.Events != nil {
		note := msg
		if n > 1 {
			note = fmt.Sprintf("%d deliveries refused since the last Event; the latest: %s", n, msg)
		}
		r.o.Events.Eventf(obj, nil, corev1.EventTypeWarning, conditionReason(reason), "CreateDelivery", "%s", note)
	}
	if c := meta.FindStatusCondition(obj.Status.Conditions, hookpostv1.ConditionDeliveriesRefused); write && (c == nil || c.Status != metav1.ConditionTrue || c.Reason != conditionReason(reason)) {
		if r.o.Ledger != ledger.Discard {
			msg += ". Such events are in the ledger with outcome refused."
		}
		cond := metav1.Condition{Type: hookpostv1.ConditionDeliveriesRefused, Status: metav1.ConditionTrue, Reason: conditionReason(reason),
			Message: msg, ObservedGeneration: obj.Generation}
		if err := r.setCondition(ctx, sub, cond); err != nil {
			log.Error(err, "DeliveriesRefused condition not written")
		}
	}
}

// Created reports that a delivery of sub was created: the API server takes its deliveries again (a first attempt
// that succeeded proves nothing of the kind, as it needs no object). The condition turns False once sub had no refusal for Quiet, so a policy that refuses some of
// a subscription's events and admits others does not flip it on every event.
func (r *Refusals) Created(ctx context.Context, sub *Subscription) {
	if r == nil {
		return
	}
	now := r.admitted(sub.Namespace)
	r.mu.Lock()
	st := r.subs[types.UID(sub.UID)]
	quiet := st == nil || now.Sub(st.lastRefused) >= r.o.Quiet
	recentlyCleared := st != nil && st.condition == "" && !st.conditionAt.IsZero() && now.Sub(st.conditionAt) < r.o.Quiet
	r.mu.Unlock()
	if !quiet || recentlyCleared {
		return
	}
	obj := r.cached(ctx, sub)
	if obj == nil || !meta.IsStatusConditionTrue(obj.Status.Conditions, hookpostv1.ConditionDeliveriesRefused) {
		return
	}
	r.mu.Lock()
	st = r.state(types.UID(sub.UID))
	st.condition, st.conditionAt = "", now
	r.mu.Unlock()
	cond := metav1.Condition{Type: hookpostv1.ConditionDeliveriesRefused, Status: metav1.ConditionFalse, Reason: hookpostv1.ReasonDeliveriesCreated,
		Message: "The API server creates this subscription's deliveries again.", ObservedGeneration: obj.Generation}
	if err := r.setCondition(ctx, sub, cond); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "DeliveriesRefused condition not cleared", "subscriptionName", sub.Name, "namespace", sub.Namespace)
	}
}

// admitted notes that a create in ns got past authorization and admission (created, or found already there),
// and returns the time. It is evidence the operator may create deliveries outside any namespace where it is
// Forbidden, so verdicts that said otherwise are dropped.
func (r *Refusals) admitted(ns string) time.Time {
	if r == nil {
		return time.Time{}
	}
	now := r.o.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.createdIn[ns] = now
	for k, v := range r.verdicts {
		if !v.elsewhere {
			delete(r.verdicts, k)
		}
	}
	return now
}

// allowedElsewhere reports whether a create Forbidden in ns is scoped to ns: the operator may create
// WebhookDeliveries in every namespace (so something other than its RBAC forbids ns), or in another namespace
// that has subscriptions. Asked with SelfSubjectAccessReviews, not inferred from traffic, so an operator whose
// permission is revoked everywhere blocks from the first event instead of refusing events until the
// others' creates start failing. When the API server cannot answer, or for a nil *Refusals, it is false: the
// batch waits.
func (r *Refusals) allowedElsewhere(ctx context.Context, ns string) bool {
	if r == nil {
		return false
	}
	r.reviewing.Lock()
	defer r.reviewing.Unlock()
	now := r.o.Clock.Now()
	r.mu.Lock()
	v, ok := r.verdicts[ns]
	r.mu.Unlock()
	if ok && now.Sub(v.at) < verdictTTL {
		return v.elsewhere
	}
	elsewhere, err := r.reviewElsewhere(ctx, ns)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Cannot tell whether a Forbidden create is scoped to its namespace; the batch waits", "namespace", ns)
		return false
	}
	r.mu.Lock()
	if !elsewhere {
		// Forbidden everywhere: no namespace's earlier verdict holds.
		clear(r.verdicts)
	}
	r.verdicts[ns] = verdict{elsewhere: elsewhere, at: now}
	r.mu.Unlock()
	return elsewhere
}

// reviewElsewhere asks whether the operator may create deliveries in every namespace, else in up to
// namespacesReviewed others: those where creates got through most recently first, then those with subscriptions.
func (r *Refusals) reviewElsewhere(ctx context.Context, forbidden string) (bool, error) {
	namespaces := []string{metav1.NamespaceAll}
	add := func(ns string) {
		if ns != forbidden && !slices.Contains(namespaces, ns) && len(namespaces) <= namespacesReviewed {
			namespaces = append(namespaces, ns)
		}
	}
	r.mu.Lock()
	recent := make([]string, 0, len(r.createdIn))
	for ns := range r.createdIn {
		recent = append(recent, ns)
	}
	slices.SortFunc(recent, func(a, b string) int { return r.createdIn[b].Compare(r.createdIn[a]) })
	r.mu.Unlock()
	for _, ns := range recent {
		add(ns)
	}
	list := &hookpostv1.WebhookSubscriptionList{}
	if err := r.o.Reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("list subscriptions: %w", err)
	}
	for i := range list.Items {
		add(list.Items[i].Namespace)
	}
	for _, ns := range namespaces {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create",
				Group: hookpostv1.GroupVersion.Group, Resource: "webhookdeliveries"},
		}}
		if err := r.o.Client.Create(ctx, review); err != nil {
			return false, fmt.Errorf("review access to create deliveries in namespace %q: %w", ns, err)
		}
		if review.Status.Allowed {
			return true, nil
		}
	}
	return false, nil
}

// Forget drops what was kept for a deleted subscription.
func (r *Refusals) Forget(uid types.UID) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs, uid)
}

func (r *Refusals) state(uid types.UID) *refusalState {
	st := r.subs[uid]
	if st == nil {
		st = &refusalState{}
		r.subs[uid] = st
	}
	return st
}

// record appends the refused pair to the ledger: the failed first attempt when one was made, else a row that
// says no attempt was (attempt 0), so `kubectl hookpost history --outcome refused` lists every event not delivered.
func (r *Refusals) record(sub *Subscription, ev *source.Event, refusedBy error, first *controller.FirstAttempt) {
	if first != nil {
		r.o.Ledger.Record(attemptRecord(sub, ev, *first, ledger.OutcomeRefused))
		return
	}
	r.o.Ledger.Record(ledger.Attempt{
		DeliveryName: hookpostv1.DeliveryName(sub.Name, ev.ID), Namespace: sub.Namespace, Subscription: sub.Name,
		EventID: ev.ID, EventType: ev.Type, TenantID: ev.TenantID, Collection: ev.Collection,
		Number: 0, Time: r.o.Clock.Now(), ErrorClass: "Refused", Error: truncate(refusedBy.Error(), refusalMessageMax),
		Outcome: ledger.OutcomeRefused,
	})
}

// cached returns the subscription as the cache holds it, nil when it is gone or was made anew.
func (r *Refusals) cached(ctx context.Context, sub *Subscription) *hookpostv1.WebhookSubscription {
	obj := &hookpostv1.WebhookSubscription{}
	// Only read, never modified: no copy of the cache's object.
	if err := r.o.Reader.Get(ctx, types.NamespacedName{Namespace: sub.Namespace, Name: sub.Name}, obj, client.UnsafeDisableDeepCopy); err != nil || string(obj.UID) != sub.UID {
		return nil
	}
	return obj
}

// setCondition writes c into sub's status with an optimistic lock, reading again on a conflict: the subscription
// controller writes the same conditions list.
func (r *Refusals) setCondition(ctx context.Context, sub *Subscription, c metav1.Condition) error {
	key := types.NamespacedName{Namespace: sub.Namespace, Name: sub.Name}
	var reader client.Reader = r.o.Reader
	for try := 0; ; try++ {
		obj := &hookpostv1.WebhookSubscription{}
		if err := reader.Get(ctx, key, obj); err != nil || string(obj.UID) != sub.UID {
			return client.IgnoreNotFound(err)
		}
		before := obj.DeepCopy()
		if !meta.SetStatusCondition(&obj.Status.Conditions, c) {
			return nil
		}
		err := r.o.Client.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) || try >= 4 {
			return fmt.Errorf("write condition %s of subscription %s: %w", c.Type, key, err)
		}
		reader = r.o.Direct
	}
}

// conditionReason is the condition and Event reason of a refusal() value.
func conditionReason(refusal string) string {
	switch refusal {
	case refusalAdmission:
		return hookpostv1.ReasonAdmissionDenied
	case refusalQuota:
		return hookpostv1.ReasonQuotaExceeded
	case refusalTerminating:
		return hookpostv1.ReasonNamespaceTerminating
	case refusalForbidden:
		return hookpostv1.ReasonDeliveryForbidden
	case refusalUnfinishedCap:
		return hookpostv1.ReasonUnfinishedCapReached
	}
	return hookpostv1.ReasonDeliveryInvalid
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary: the message goes into objects that must hold valid UTF-8.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
