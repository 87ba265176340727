package controller

import (
	"context"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// Watermarks tells whether a source has acknowledged every event below a position (source.Watermarks implements
// it): the binary wires its sources in, so this package needs none of them.
type Watermarks interface {
	Passed(ctx context.Context, source string, position uint64, now time.Time) (bool, error)
}

// Waits of an ordered delivery that nothing wakes: the watermark is polled; a predecessor's finish wakes its
// successor (orderingSuccessor), and predecessorRecheck only covers a wake-up lost to a restart.
const (
	watermarkPoll      = 250 * time.Millisecond
	predecessorRecheck = 30 * time.Second
	// watermarkQuiet is how long a delivery waits for the watermark before the wait is written into its status.
	watermarkQuiet = 5 * time.Second
)

// orderingPeer is what the sequencing reads of another delivery of the same subscription and ordering key.
type orderingPeer struct {
	name     string
	source   string
	position int64
	phase    hookpostv1.DeliveryPhase
}

// orderingDecision says whether an ordered delivery may be attempted now and, when not, why (a Delivered reason and
// message) and how soon to look again (0: when woken).
type orderingDecision struct {
	reason, message string
	recheck         time.Duration
}

// Go reports whether the delivery may be attempted now.
func (o orderingDecision) Go() bool { return o.reason == "" }

// decideOrder is the sequencing of an ordered delivery, a pure function of what it waits on: its source's watermark
// must have passed its position (passed; watermarkErr when it could not be read), so that every earlier event of
// its key already has its delivery among peers; then no peer of the same source with a lower position may be
// unfinished (Pending, Retrying), nor, when block (spec.ordering.onExhausted Block), Failed. The message names the
// nearest such predecessor: it changes only when that one finishes, so a long queue costs one status write per
// delivery, not one per delivery ahead.
func decideOrder(own *hookpostv1.DeliveryOrdering, passed bool, watermarkErr error, peers []orderingPeer, block bool) orderingDecision {
	if watermarkErr != nil {
		return orderingDecision{reason: hookpostv1.ReasonWaitingForSource, recheck: watermarkPoll,
			message: fmt.Sprintf("ordered delivery (position %d in source %s) waits: %v", own.Position, own.Source, watermarkErr)}
	}
	if !passed {
		return orderingDecision{reason: hookpostv1.ReasonWaitingForSource, recheck: watermarkPoll,
			message: fmt.Sprintf("ordered delivery waits until source %s has acknowledged every event before position %d, so no earlier delivery of key %q is still on its way", own.Source, own.Position, own.Key)}
	}
	var nearest *orderingPeer
	for i := range peers {
		p := &peers[i]
		if p.source != own.Source || p.position >= own.Position {
			continue
		}
		holds := !p.phase.Finished() || (block && p.phase == hookpostv1.DeliveryFailed)
		if holds && (nearest == nil || p.position > nearest.position) {
			nearest = p
		}
	}
	if nearest == nil {
		return orderingDecision{}
	}
	msg := fmt.Sprintf("waiting for %s, the delivery before it of ordering key %q, to finish", nearest.name, own.Key)
	if nearest.phase == hookpostv1.DeliveryFailed {
		msg = fmt.Sprintf("waiting for %s, the delivery before it of ordering key %q: it failed and spec.ordering.onExhausted is Block; replay it (kubectl hookpost replay) until it succeeds, or delete it, to let this key go on", nearest.name, own.Key)
	}
	return orderingDecision{reason: hookpostv1.ReasonWaitingForPredecessor, message: msg, recheck: predecessorRecheck}
}

// orderingPeers lists the other deliveries of d's subscription and ordering key, from the cache.
func (r *WebhookDeliveryReconciler) orderingPeers(ctx context.Context, d *hookpostv1.WebhookDelivery) ([]orderingPeer, error) {
	list := &hookpostv1.WebhookDeliveryList{}
	if err := r.List(ctx, list, client.InNamespace(d.Namespace), client.MatchingFields{indexDeliveryOrderingKey: orderingIndexValue(d)},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list the deliveries of ordering key %q: %w", d.Spec.Ordering.Key, err)
	}
	peers := make([]orderingPeer, 0, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		if p.UID == d.UID || p.Spec.Ordering == nil {
			continue
		}
		peers = append(peers, orderingPeer{name: p.Name, source: p.Spec.Ordering.Source, position: p.Spec.Ordering.Position, phase: p.Status.Phase})
	}
	return peers, nil
}

// sequence decides whether the ordered delivery d of sub may be attempted now (Go), reading the watermark and the
// peers; test deliveries, and those the operator did not create, are not sequenced: they are sent as test events.
func (r *WebhookDeliveryReconciler) sequence(ctx context.Context, d *hookpostv1.WebhookDelivery, sub *hookpostv1.WebhookSubscription) (orderingDecision, error) {
	if d.Spec.Ordering == nil || r.sendsAsTest(d) {
		return orderingDecision{}, nil
	}
	passed, werr := true, error(nil)
	if r.Watermarks != nil {
		passed, werr = r.Watermarks.Passed(ctx, d.Spec.Ordering.Source, uint64(d.Spec.Ordering.Position), r.Clock.Now())
	}
	var peers []orderingPeer
	if werr == nil && passed {
		var err error
		if peers, err = r.orderingPeers(ctx, d); err != nil {
			return orderingDecision{}, err
		}
	}
	block := sub.Spec.Ordering != nil && sub.Spec.Ordering.OnExhausted == hookpostv1.OrderingBlock
	return decideOrder(d.Spec.Ordering, passed, werr, peers, block), nil
}

// orderingIndexValue is d's value in indexDeliveryOrderingKey: its subscription and key, hashed.
func orderingIndexValue(d *hookpostv1.WebhookDelivery) string {
	return hookpostv1.OrderingKeyHash(d.Spec.SubscriptionName, d.Spec.Ordering.Key)
}

// orderingSuccessor maps an ordered delivery that finished, or was deleted, to the one its key waits on next: the
// unfinished delivery of the key with the lowest position in the same source. So a key advances as soon as its
// head finishes, without polling, and only its new head is woken, not the whole queue.
func (r *WebhookDeliveryReconciler) orderingSuccessor(ctx context.Context, o client.Object) []reconcile.Request {
	d, ok := o.(*hookpostv1.WebhookDelivery)
	if !ok || d.Spec.Ordering == nil {
		return nil
	}
	peers, err := r.orderingPeers(ctx, d)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List the deliveries of an ordering key", "subscriptionName", d.Spec.SubscriptionName)
		return nil
	}
	var head *orderingPeer
	for i := range peers {
		p := &peers[i]
		if p.source == d.Spec.Ordering.Source && !p.phase.Finished() && (head == nil || p.position < head.position) {
			head = p
		}
	}
	if head == nil {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: d.Namespace, Name: head.name}}}
}

// orderedFinishes passes the events that can let an ordering key advance: an ordered delivery finishing (or
// replayed back to unfinished, which its successors must now wait for: they are woken as well, harmlessly) and
// one deleted.
type orderedFinishes struct{ predicate.Funcs }

func (orderedFinishes) Create(event.CreateEvent) bool { return false }
func (orderedFinishes) Delete(e event.DeleteEvent) bool {
	d, ok := e.Object.(*hookpostv1.WebhookDelivery)
	return ok && d.Spec.Ordering != nil
}
func (orderedFinishes) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*hookpostv1.WebhookDelivery)
	n, ok2 := e.ObjectNew.(*hookpostv1.WebhookDelivery)
	return ok1 && ok2 && n.Spec.Ordering != nil && o.Status.Phase != n.Status.Phase && (o.Status.Phase.Finished() || n.Status.Phase.Finished())
}
func (orderedFinishes) Generic(event.GenericEvent) bool { return false }
