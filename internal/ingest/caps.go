package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
)

// Defaults of the unfinished-delivery caps (--max-unfinished-per-subscription, --max-unfinished).
const (
	DefaultMaxUnfinishedPerSubscription = 10000
	DefaultMaxUnfinished                = 100000
)

// DefaultParkedRefresh is CapsOptions.Refresh's default.
const DefaultParkedRefresh = 2 * time.Second

// CapsOptions configure Caps.
type CapsOptions struct {
	// PerSubscription and Total cap the unfinished WebhookDeliveries of one subscription and of the cluster
	// (defaults DefaultMaxUnfinishedPerSubscription, DefaultMaxUnfinished).
	PerSubscription, Total int
	// Unfinished counts them.
	Unfinished *Unfinished
	// Parking holds the matches past a cap, in the ledger's database; nil (no ledger) refuses them instead.
	Parking ledger.Parking
	// Refusals reports matches refused past a cap without Parking.
	Refusals *Refusals
	// Clock stamps the refreshes (default the real clock); Refresh is how often the parked counts are read
	// (default DefaultParkedRefresh).
	Clock   clock.WithTicker
	Refresh time.Duration
}

// Caps keeps the unfinished WebhookDeliveries within the caps. A match that would take its subscription or the
// cluster past a cap gets no object and no first attempt: with a ledger it is parked there, in order of arrival,
// and the Drain makes its object once there is room; without one it is refused, loudly (the DeliveriesRefused
// condition with reason UnfinishedCapReached, a Warning Event, hookpost_deliveries_refused_total{reason="unfinishedCap"}).
// While a subscription has matches parked past a cap, its new matches are parked behind them, so they still arrive
// in order; matches parked for a failing or hanging endpoint (Park) hold nothing behind them.
//
// Caps is also a manager.Runnable, on every replica: it reads which subscriptions have parked matches (whoever
// parked them) every Refresh. A nil *Caps admits everything.
type Caps struct {
	o CapsOptions

	mu sync.Mutex
	// parked is which subscriptions had matches parked past a cap at the last refresh; marked, which this replica
	// parked past a cap since (and when), so a refresh that began before a match was parked does not forget it.
	parked map[ledger.SubscriptionKey]bool
	marked map[ledger.SubscriptionKey]time.Time
}

// NewCaps returns Caps configured by o.
func NewCaps(o CapsOptions) *Caps {
	if o.PerSubscription <= 0 {
		o.PerSubscription = DefaultMaxUnfinishedPerSubscription
	}
	if o.Total <= 0 {
		o.Total = DefaultMaxUnfinished
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultParkedRefresh
	}
	return &Caps{o: o, parked: map[ledger.SubscriptionKey]bool{}, marked: map[ledger.SubscriptionKey]time.Time{}}
}

// NeedLeaderElection is false: every replica ingests, so every replica must know which subscriptions are parked.
func (c *Caps) NeedLeaderElection() bool { return false }

// Start refreshes the parked subscriptions until ctx ends; without Parking there is nothing to refresh.
func (c *Caps) Start(ctx context.Context) error {
	if c.o.Parking == nil {
		return nil
	}
	t := c.o.Clock.NewTicker(c.o.Refresh)
	defer t.Stop()
	for {
		if err := c.refresh(ctx); err != nil && ctx.Err() == nil {
			ctrl.LoggerFrom(ctx).Error(err, "Parked deliveries not counted; matches of subscriptions parked before stay parked")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

func (c *Caps) refresh(ctx context.Context) error {
	began := c.o.Clock.Now()
	counts, err := c.o.Parking.Counts(ctx)
	if err != nil {
		return err
	}
	parked := make(map[ledger.SubscriptionKey]bool, len(counts))
	for k, n := range counts {
		if n.PastCap > 0 {
			parked[k] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parked = parked
	for k, at := range c.marked {
		if at.Before(began) {
			delete(c.marked, k)
		}
	}
	return nil
}

// backlogged reports whether sub has matches parked past a cap, as far as this replica knows.
func (c *Caps) backlogged(key ledger.SubscriptionKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, marked := c.marked[key]
	return marked || c.parked[key]
}

// Admit decides whether a match may be dispatched: false when its subscription has matches parked past a cap or
// it, or the cluster, is at its cap; the match is then done (parked, or refused without a ledger), or err says why it
// could not be parked (the batch is handed back). It reserves nothing: a first attempt that succeeds needs no
// object. A match that will get an object without an attempt goes through Hold instead.
func (c *Caps) Admit(ctx context.Context, sub *Subscription, ev *source.Event) (admitted bool, err error) {
	if c == nil {
		return true, nil
	}
	key := subscriptionKey(sub)
	if c.o.Parking != nil && c.backlogged(key) {
		return false, c.park(ctx, key, ev, ledger.ParkedPastCap, "")
	}
	if c.o.Unfinished.Count(sub) < c.o.PerSubscription && c.o.Unfinished.Total() < c.o.Total {
		return true, nil
	}
	return false, c.setAside(ctx, sub, ev)
}

// Hold is Admit for a match about to become a WebhookDelivery without an attempt (a paused subscription, a busy
// host, the object-per-delivery mode): it counts the delivery before it is created, so concurrent matches cannot
// take the subscription past its cap. When admitted, the caller calls release once the create is done (a
// created delivery stays counted).
func (c *Caps) Hold(ctx context.Context, sub *Subscription, ev *source.Event) (release func(), admitted bool, err error) {
	if c == nil {
		return func() {}, true, nil
	}
	name := hookpostv1.DeliveryName(sub.Name, ev.ID)
	key := subscriptionKey(sub)
	if c.o.Parking != nil && c.backlogged(key) {
		return nil, false, c.park(ctx, key, ev, ledger.ParkedPastCap, "")
	}
	if c.o.Unfinished.reserve(sub, name, c.o.PerSubscription, c.o.Total) {
		return func() { c.o.Unfinished.release(sub, name) }, true, nil
	}
	return nil, false, c.setAside(ctx, sub, ev)
}

// Park parks a match below the caps too, when there is a ledger to park it in: a match of a subscription whose
// endpoint is failing (its circuit open, or its first attempts failing) or hanging, which would otherwise become a
// WebhookDelivery at once, one API write per match while the endpoint cannot take any. first is the failed first
// attempt already made, nil for none: the row carries it, and the object the drain makes of it carries it too, as
// if it had been written at once (its retries follow the schedule from that attempt). parked is false without a
// ledger; the caller then makes the object as before. The drain makes the parked matches deliveries, in order, as
// the caps and the endpoint allow. New matches are not parked behind them: once the endpoint takes deliveries they
// are attempted at once.
func (c *Caps) Park(ctx context.Context, sub *Subscription, ev *source.Event, first *controller.FirstAttempt) (parked bool, err error) {
	if c == nil || c.o.Parking == nil {
		return false, nil
	}
	encoded := ""
	if first != nil {
		encoded = first.Encode()
	}
	return true, c.park(ctx, subscriptionKey(sub), ev, ledger.ParkedForEndpoint, encoded)
}

// setAside parks a match past a cap, or refuses it without a ledger.
func (c *Caps) setAside(ctx context.Context, sub *Subscription, ev *source.Event) error {
	if c.o.Parking != nil {
		return c.park(ctx, subscriptionKey(sub), ev, ledger.ParkedPastCap, "")
	}
	metrics.DeliveryRefused(refusalUnfinishedCap)
	c.o.Refusals.Refused(ctx, sub, ev, refusalUnfinishedCap, c.capError(sub), nil)
	return nil
}

// created keeps the delivery of ev to sub counted: its object exists.
func (c *Caps) created(sub *Subscription, name string) {
	if c != nil {
		c.o.Unfinished.created(sub, name)
	}
}

// park parks ev's match to key for reason, with the encoded first attempt already made ("" for none). Past a cap,
// the subscription's next matches are parked behind it.
func (c *Caps) park(ctx context.Context, key ledger.SubscriptionKey, ev *source.Event, reason ledger.ParkReason, first string) error {
	if err := c.o.Parking.Park(ctx, ledger.Parked{Subscription: key, Reason: reason, EventID: ev.ID, EventType: ev.Type, TenantID: ev.TenantID,
		Collection: ev.Collection, OccurredAt: ev.OccurredAt, Data: ev.Data, FirstAttempt: first}); err != nil {
		return err
	}
	metrics.DeliveryParked()
	if reason == ledger.ParkedPastCap {
		c.mu.Lock()
		c.marked[key] = c.o.Clock.Now()
		c.mu.Unlock()
	}
	return nil
}

// capError says which cap a refused match met, and what to do.
func (c *Caps) capError(sub *Subscription) error {
	n, total := c.o.Unfinished.Count(sub), c.o.Unfinished.Total()
	if n >= c.o.PerSubscription {
		return fmt.Errorf("subscription %s/%s has %d unfinished WebhookDeliveries, its cap (--max-unfinished-per-subscription=%d), and without a ledger (--ledger-dsn) nothing can be parked; resume or fix the receiver so they finish, or configure a ledger",
			sub.Namespace, sub.Name, n, c.o.PerSubscription)
	}
	return fmt.Errorf("the cluster has %d unfinished WebhookDeliveries, the cap (--max-unfinished=%d), and without a ledger (--ledger-dsn) nothing can be parked; configure a ledger, or raise the cap if etcd has room",
		total, c.o.Total)
}

func subscriptionKey(sub *Subscription) ledger.SubscriptionKey {
	return ledger.SubscriptionKey{Namespace: sub.Namespace, Name: sub.Name, UID: sub.UID}
}
