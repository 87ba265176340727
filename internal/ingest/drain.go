package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
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
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
)

// DefaultDrainInterval is DrainOptions.Interval's default.
const DefaultDrainInterval = time.Second

// drainBatch bounds the parked matches one subscription gets objects for per round, so one large backlog does
// not hold up the others'.
const drainBatch = 200

// DefaultDrainParallelism is DrainOptions.Parallelism's default. One at a time, a round of drainBatch takes
// drainBatch API round trips, and a backlog parked while an endpoint failed drains slower than events arrive.
const DefaultDrainParallelism = 16

// DrainOptions configure a Drain.
type DrainOptions struct {
	// Client creates deliveries; Reader reads subscriptions (the manager's cache).
	Client client.Client
	Reader client.Reader
	// Parking holds the parked matches; Caps and its Unfinished say how much room there is.
	Parking ledger.Parking
	Caps    *Caps
	// Refusals reports deliveries the API server refuses for good, and writes the Backlogged condition.
	Refusals *Refusals
	// Sealer seals each delivery, as ingest does.
	Sealer *controller.Sealer
	// Events gets the Events on the Backlogged transitions; nil emits none.
	Events events.EventRecorder
	// EndpointRoom bounds the objects a subscription's parked matches may become this round for what its endpoint
	// can take now (see EndpointRoom): 0 leaves them parked, a row each, rather than objects that would only wait;
	// negative, or a nil func, does not bound them.
	EndpointRoom func(*hookpostv1.WebhookSubscription) int
	// Parallelism is how many objects a round creates at once (default DefaultDrainParallelism). They start in
	// order of arrival, so objects are made in that order give or take Parallelism; 1 makes them strictly in order.
	Parallelism int
	// Clock paces the rounds (default the real clock) every Interval (default DefaultDrainInterval).
	Clock    clock.WithTicker
	Interval time.Duration
}

// Drain is a manager.Runnable, on the leader only, that turns parked matches into WebhookDeliveries once there is
// room: a subscription's in order of arrival, while it is below its cap, the cluster below its cap and the
// subscription not paused. The parked row is removed only after its object exists; the object's name comes from
// (subscription, event id), so a crash between the two finds it already there and only removes the row. It keeps
// each subscription's Backlogged condition (with the parked count) and the hookpost_parked_deliveries gauge
// current, with an Event when the condition flips.
type Drain struct {
	o DrainOptions
	// reported holds the subscriptions this process last saw with parked matches, to turn their condition False
	// when the last one is gone.
	reported map[ledger.SubscriptionKey]bool
}

// NewDrain returns a Drain configured by o.
func NewDrain(o DrainOptions) *Drain {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Interval <= 0 {
		o.Interval = DefaultDrainInterval
	}
	if o.Parallelism <= 0 {
		o.Parallelism = DefaultDrainParallelism
	}
	o.Events = controller.FitNotes(o.Events)
	return &Drain{o: o, reported: map[ledger.SubscriptionKey]bool{}}
}

// NeedLeaderElection is true: one replica drains, so a subscription's parked matches are made in order.
func (d *Drain) NeedLeaderElection() bool { return true }

// Start drains every Interval until ctx ends.
func (d *Drain) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("drain")
	ctx = ctrl.LoggerInto(ctx, log)
	d.adoptConditions(ctx)
	t := d.o.Clock.NewTicker(d.o.Interval)
	defer t.Stop()
	for {
		more, err := d.round(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error(err, "Parked deliveries not drained; retrying")
		}
		if more && err == nil {
			// A subscription had a whole round's worth made and room for more: the next round starts now.
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// adoptConditions takes over the subscriptions another leader left Backlogged, so their condition turns False
// once nothing of theirs is parked.
func (d *Drain) adoptConditions(ctx context.Context) {
	list := &hookpostv1.WebhookSubscriptionList{}
	if err := d.o.Reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return
	}
	for i := range list.Items {
		s := &list.Items[i]
		if meta.IsStatusConditionTrue(s.Status.Conditions, hookpostv1.ConditionBacklogged) {
			d.reported[ledger.SubscriptionKey{Namespace: s.Namespace, Name: s.Name, UID: string(s.UID)}] = true
		}
	}
}

// round drains what there is room for and brings the conditions up to date; more is true when a subscription
// got a whole drainBatch of objects and still has parked matches.
func (d *Drain) round(ctx context.Context) (more bool, err error) {
	counts, err := d.o.Parking.Counts(ctx)
	if err != nil {
		return false, err
	}
	var total int64
	for key, count := range counts {
		n := count.All
		left, err := d.drain(ctx, key, n)
		total += left
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Parked deliveries of a subscription not drained", "namespace", key.Namespace, "subscriptionName", key.Name)
		}
		more = more || (err == nil && n-left >= drainBatch && left > 0)
	}
	metrics.SetParked(total)
	for key := range d.reported {
		if _, ok := counts[key]; !ok {
			d.report(ctx, key, 0, nil)
		}
	}
	return more, nil
}

// drain makes objects for the oldest of key's n parked matches that there is room for; it returns how many are left.
func (d *Drain) drain(ctx context.Context, key ledger.SubscriptionKey, n int64) (int64, error) {
	obj := &hookpostv1.WebhookSubscription{}
	err := d.o.Reader.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, obj, client.UnsafeDisableDeepCopy)
	if client.IgnoreNotFound(err) != nil {
		return n, err
	}
	if err != nil || string(obj.UID) != key.UID || obj.DeletionTimestamp != nil {
		// Its deliveries would go with it.
		gone, err := d.o.Parking.RemoveSubscription(ctx, key)
		if err == nil {
			ctrl.LoggerFrom(ctx).Info("Parked deliveries of a deleted subscription discarded", "namespace", key.Namespace, "subscriptionName", key.Name, "count", gone)
			delete(d.reported, key)
		}
		return 0, err
	}
	sub := FromAPI(obj)
	room := 0
	if !obj.Spec.Paused {
		room = min(d.o.Caps.o.PerSubscription-d.o.Caps.o.Unfinished.Count(sub), d.o.Caps.o.Total-d.o.Caps.o.Unfinished.Total(), drainBatch)
		if d.o.EndpointRoom != nil {
			if r := d.o.EndpointRoom(obj); r >= 0 {
				room = min(room, r)
			}
		}
	}
	left := n
	if room > 0 {
		parked, err := d.o.Parking.Oldest(ctx, key, room)
		if err != nil {
			d.report(ctx, key, left, obj)
			return left, err
		}
		made, err := d.make(ctx, sub, parked)
		if rerr := d.o.Parking.Remove(ctx, made...); rerr != nil {
			err = errors.Join(err, rerr)
		} else {
			left -= int64(len(made))
		}
		if err != nil {
			d.report(ctx, key, left, obj)
			return left, err
		}
	}
	d.report(ctx, key, left, obj)
	return left, nil
}

// make creates the objects of parked, Parallelism at a time, starting them in their order of arrival, and
// returns the Seq of each one that exists now; one parked with its failed first attempt carries it. A refusal for
// good is reported (and in the ledger with outcome refused) and counts as made: its row goes too. After an error
// no more are started.
func (d *Drain) make(ctx context.Context, sub *Subscription, parked []ledger.Parked) (made []int64, err error) {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.o.Parallelism)
	for _, p := range parked {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			ev := &source.Event{ID: p.EventID, Type: p.EventType, TenantID: p.TenantID, Collection: p.Collection, OccurredAt: p.OccurredAt, Data: p.Data}
			if err := d.create(gctx, sub, ev, p.FirstAttempt); err != nil {
				return err
			}
			mu.Lock()
			made = append(made, p.Seq)
			mu.Unlock()
			return nil
		})
	}
	err = g.Wait()
	return made, err
}

// create makes the object of one parked match; first is its encoded failed first attempt, "" for none.
func (d *Drain) create(ctx context.Context, sub *Subscription, ev *source.Event, first string) error {
	if first != "" {
		attempt, err := controller.DecodeFirstAttempt(first)
		if err == nil {
			return createAttempted(ctx, d.o.Client, d.o.Refusals, d.o.Caps, d.o.Sealer, sub, ev, attempt)
		}
		// The delivery is made without it, and its first attempt is made again.
		ctrl.LoggerFrom(ctx).Error(err, "Parked first attempt unreadable; the delivery is made without it", "eventID", ev.ID,
			"namespace", sub.Namespace, "subscriptionName", sub.Name)
	}
	return createDelivery(ctx, d.o.Client, d.o.Refusals, d.o.Caps, sub, ev, NewDelivery(ctx, sub, ev, d.o.Sealer))
}

// report writes key's Backlogged condition for left parked matches, with an Event when it flips. obj is the
// subscription from the cache, nil to read it.
func (d *Drain) report(ctx context.Context, key ledger.SubscriptionKey, left int64, obj *hookpostv1.WebhookSubscription) {
	if obj == nil {
		obj = &hookpostv1.WebhookSubscription{}
		if err := d.o.Reader.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, obj, client.UnsafeDisableDeepCopy); err != nil || string(obj.UID) != key.UID {
			delete(d.reported, key)
			return
		}
	}
	c := d.o.Caps.o
	atCap := c.Unfinished.Count(FromAPI(obj)) >= c.PerSubscription || c.Unfinished.Total() >= c.Total
	cond := backloggedCondition(obj, left, c.PerSubscription, c.Total, atCap)
	if left > 0 {
		d.reported[key] = true
	} else {
		delete(d.reported, key)
	}
	prev := meta.FindStatusCondition(obj.Status.Conditions, hookpostv1.ConditionBacklogged)
	if prev != nil && prev.Status == cond.Status && prev.Reason == cond.Reason && prev.Message == cond.Message {
		return
	}
	if prev == nil && cond.Status == metav1.ConditionFalse {
		return
	}
	flipped := prev == nil || prev.Status != cond.Status
	if err := d.o.Refusals.setCondition(ctx, FromAPI(obj), cond); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Backlogged condition not written", "namespace", key.Namespace, "subscriptionName", key.Name)
		return
	}
	if flipped && d.o.Events != nil {
		kind := corev1.EventTypeWarning
		if cond.Status == metav1.ConditionFalse {
			kind = corev1.EventTypeNormal
		}
		d.o.Events.Eventf(obj, nil, kind, cond.Reason, "Park", "%s", cond.Message)
	}
}

// backloggedCondition is the Backlogged condition of sub with left parked matches; atCap says whether it (or the
// cluster) is at its cap of unfinished deliveries, else they were parked for a failing or hanging endpoint.
func backloggedCondition(sub *hookpostv1.WebhookSubscription, left int64, perSub, total int, atCap bool) metav1.Condition {
	c := metav1.Condition{Type: hookpostv1.ConditionBacklogged, ObservedGeneration: sub.Generation}
	switch {
	case left == 0:
		c.Status, c.Reason = metav1.ConditionFalse, hookpostv1.ReasonBacklogDrained
		c.Message = "every parked event became a delivery"
	case sub.Spec.Paused:
		c.Status, c.Reason = metav1.ConditionTrue, hookpostv1.ReasonUnfinishedCapReached
		c.Message = fmt.Sprintf("%d events are parked in the ledger's database: the subscription is paused and reached its cap of unfinished deliveries (%d per subscription, %d in the cluster); they become deliveries in order of arrival once spec.paused is false",
			left, perSub, total)
	case !atCap:
		c.Status, c.Reason = metav1.ConditionTrue, hookpostv1.ReasonEndpointUnavailable
		c.Message = fmt.Sprintf("%d events are parked in the ledger's database: they came while the endpoint's circuit was open, its attempts hung or its first attempts failed; they become deliveries in order of arrival as the endpoint takes deliveries again, while new events are attempted at once (see the CircuitOpen condition)",
			left)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, hookpostv1.ReasonUnfinishedCapReached
		c.Message = fmt.Sprintf("%d events are parked in the ledger's database: the subscription reached its cap of unfinished deliveries (%d per subscription, %d in the cluster); they become deliveries in order of arrival as its deliveries finish",
			left, perSub, total)
	}
	return c
}
