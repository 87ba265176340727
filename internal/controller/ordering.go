package controller

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// Watermarks tells whether a source has acknowledged every event below a position, and when the reading that says
// so was taken (source.Watermarks implements it): the binary wires its sources in, so this package needs none.
type Watermarks interface {
	Passed(ctx context.Context, source string, position uint64, now time.Time) (passed bool, readAt time.Time, err error)
}

// Waits of an ordered delivery: the head of a key polls the watermark; the deliveries behind it are woken by their
// predecessor's finish (orderingSuccessor), and predecessorRecheck only covers a wake-up that got lost (a failed
// list in the mapping), at a pace that costs little with tens of thousands waiting.
const (
	watermarkPoll      = 250 * time.Millisecond
	predecessorRecheck = 2 * time.Minute
	// watermarkQuiet is how long a delivery waits for the watermark before the wait is written into its status.
	watermarkQuiet = 5 * time.Second
	// cachePoll is how soon a delivery whose source has caught up looks again while the cache has not.
	cachePoll = 50 * time.Millisecond
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
	// confirm asks for the wait to be written at once: the write itself moves the cache past the deliveries it
	// waits to see (cacheBarrier); its message names the barrier, so a new barrier is a new write.
	confirm bool
}

// Go reports whether the delivery may be attempted now.
func (o orderingDecision) Go() bool { return o.reason == "" }

// decideOrder is the sequencing of an ordered delivery, a function of what it waits on: no peer of the same source
// with a lower position may be unfinished (Pending, Retrying), nor, when block (spec.ordering.onExhausted Block),
// Failed; and its source's watermark must have passed its position (watermark, read only then), so that every
// earlier event of its key already has its delivery, and the cache the peers come from must hold every delivery
// created before that reading (cached). The predecessors come first: a delivery behind
// an unfinished one waits for it whatever the watermark, and is woken when it finishes, so only the head of a key
// ever polls the watermark. The message names the nearest predecessor: it changes only when that one finishes, so
// a long queue costs one status write per delivery, not one per delivery ahead.
func decideOrder(own *hookpostv1.DeliveryOrdering, peers []orderingPeer, block bool, watermark func() (passed bool, barrier uint64, cached bool, err error)) orderingDecision {
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
	if nearest != nil {
		msg := fmt.Sprintf("waiting for %s, the delivery before it of ordering key %q, to finish", nearest.name, own.Key)
		if nearest.phase == hookpostv1.DeliveryFailed {
			msg = fmt.Sprintf("waiting for %s, the delivery before it of ordering key %q: it failed and spec.ordering.onExhausted is Block; replay it (kubectl hookpost replay) until it succeeds, or delete it, to let this key go on", nearest.name, own.Key)
		}
		return orderingDecision{reason: hookpostv1.ReasonWaitingForPredecessor, message: msg, recheck: predecessorRecheck}
	}
	passed, barrier, cached, err := watermark()
	if err != nil {
		return orderingDecision{reason: hookpostv1.ReasonWaitingForSource, recheck: watermarkPoll,
			message: fmt.Sprintf("ordered delivery (position %d in source %s) waits: %v", own.Position, own.Source, err)}
	}
	if !passed {
		return orderingDecision{reason: hookpostv1.ReasonWaitingForSource, recheck: watermarkPoll,
			message: fmt.Sprintf("ordered delivery waits until source %s has acknowledged every event before position %d, so no earlier delivery of key %q is still on its way", own.Source, own.Position, own.Key)}
	}
	if !cached {
		return orderingDecision{reason: hookpostv1.ReasonWaitingForSource, recheck: cachePoll, confirm: true,
			message: fmt.Sprintf("ordered delivery waits until the operator's cache holds every delivery created before source %s acknowledged position %d (resource version %d)", own.Source, own.Position, barrier)}
	}
	return orderingDecision{}
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
// peers. Test deliveries, and those the operator did not create, are not sequenced: they are sent as test events.
// Nor is any delivery once its subscription no longer orders (spec.ordering removed): that lets a stuck key go.
func (r *WebhookDeliveryReconciler) sequence(ctx context.Context, d *hookpostv1.WebhookDelivery, sub *hookpostv1.WebhookSubscription) (orderingDecision, error) {
	if d.Spec.Ordering == nil || sub.Spec.Ordering == nil || r.sendsAsTest(d) {
		return orderingDecision{}, nil
	}
	peers, err := r.orderingPeers(ctx, d)
	if err != nil {
		return orderingDecision{}, err
	}
	watermark := func() (passed bool, barrier uint64, cached bool, err error) {
		if r.Watermarks == nil {
			return true, 0, true, nil
		}
		passed, readAt, err := r.Watermarks.Passed(ctx, d.Spec.Ordering.Source, uint64(d.Spec.Ordering.Position), r.Clock.Now())
		if err != nil || !passed {
			return passed, 0, false, err
		}
		barrier, cached, err = r.barrier.passed(ctx, r.APIReader, d.Namespace, readAt, r.Clock.Now())
		return passed, barrier, cached, err
	}
	block := sub.Spec.Ordering.OnExhausted == hookpostv1.OrderingBlock
	if order := decideOrder(d.Spec.Ordering, peers, block, watermark); !order.Go() {
		return order, nil
	}
	// The peers were read before the watermark and the cache passed: a delivery of the key the cache took in
	// meanwhile is among them only when they are read again.
	if peers, err = r.orderingPeers(ctx, d); err != nil {
		return orderingDecision{}, err
	}
	return decideOrder(d.Spec.Ordering, peers, block, func() (bool, uint64, bool, error) { return true, 0, true, nil }), nil
}

// cacheBarrier tells whether the manager's cache has seen every WebhookDelivery created before a moment. The
// watermark says every earlier event's delivery was created, in the API server; the peers are read from the
// cache, which lags it: a delivery of the key created just before the batch was acknowledged may not be in it yet.
// Resource versions of one resource are totally ordered and the informer applies changes in that order, so the
// cache holds every delivery created before the barrier (the list resource version of a read made after the
// watermark reading) once it has applied a change at or past it. The informer reports each change applied
// (observe); while the deliveries are quiet, the waiting delivery's own status write is such a change.
// Comparing resource versions as numbers relies on etcd's, as the API server's own consistent reads do.
type cacheBarrier struct {
	seen atomic.Uint64 // highest resource version of a delivery the cache has applied

	mu sync.Mutex
	rv uint64    // the barrier: a list resource version read at `at`
	at time.Time // zero before the first read
}

// observe records a delivery the cache applied.
func (b *cacheBarrier) observe(obj any) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o, err := apimeta.Accessor(obj)
	if err != nil {
		return
	}
	rv, err := strconv.ParseUint(o.GetResourceVersion(), 10, 64)
	if err != nil {
		return
	}
	for cur := b.seen.Load(); rv > cur && !b.seen.CompareAndSwap(cur, rv); cur = b.seen.Load() {
	}
}

// passed reports whether the cache holds every delivery created before readAt, taking a new barrier (one list of
// at most one delivery in namespace, from the API server) when the last one is not later than readAt.
func (b *cacheBarrier) passed(ctx context.Context, reader client.Reader, namespace string, readAt, now time.Time) (barrier uint64, cached bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.at.IsZero() || !b.at.After(readAt) {
		list := &hookpostv1.WebhookDeliveryList{}
		if err := reader.List(ctx, list, client.InNamespace(namespace), client.Limit(1)); err != nil {
			return 0, false, fmt.Errorf("read the deliveries' resource version: %w", err)
		}
		rv, err := strconv.ParseUint(list.ResourceVersion, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("read the deliveries' resource version %q: %w", list.ResourceVersion, err)
		}
		b.rv, b.at = rv, now
		if !now.After(readAt) {
			// A clock that did not move (a fake one in tests) still orders the list after the reading.
			b.at = readAt.Add(time.Nanosecond)
		}
	}
	return b.rv, b.seen.Load() >= b.rv, nil
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
