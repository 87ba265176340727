package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// reservationTTL is how long a delivery ingest is creating counts before the cache shows it: far longer than a
// create takes to reach the cache, so it only ends reservations of objects the cache never reported.
const reservationTTL = time.Minute

// Unfinished counts the unfinished WebhookDelivery objects (phase Pending, Retrying, or none yet) per subscription
// and in total, kept current by the cache's change notifications, so checking a cap per event costs a map
// lookup, not a list. The count is a set of delivery names, not a counter: a repeated or missed notification
// cannot make it drift, and a delivery ingest is about to create (reserved by name) is the same entry as the
// object once the cache shows it. Every replica counts what its cache holds, plus its own reservations.
type Unfinished struct {
	clock clock.PassiveClock

	mu   sync.Mutex
	subs map[unfinishedKey]*unfinishedSet
	// reserving holds the subscriptions with reservations, the only ones whose counts can expire.
	reserving map[unfinishedKey]*unfinishedSet
	total     int
}

// unfinishedKey is a subscription's namespace and name (a delivery names its subscription, not its UID).
type unfinishedKey struct{ namespace, name string }

// unfinishedSet holds one subscription's unfinished deliveries by name: the zero time for one the cache shows,
// the end of the reservation for one being created.
type unfinishedSet struct {
	names    map[string]time.Time
	reserved int
}

// WatchUnfinished registers an Unfinished with the cache's WebhookDelivery informer. Call it before the manager
// starts; the count follows the cache from its first sync.
func WatchUnfinished(ctx context.Context, c cache.Informers, clk clock.PassiveClock) (*Unfinished, error) {
	inf, err := c.GetInformer(ctx, &hookpostv1.WebhookDelivery{})
	if err != nil {
		return nil, fmt.Errorf("get delivery informer: %w", err)
	}
	u := NewUnfinished(clk)
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { u.observe(o, false) },
		UpdateFunc: func(_, o any) { u.observe(o, false) },
		DeleteFunc: func(o any) { u.observe(o, true) },
	}); err != nil {
		return nil, fmt.Errorf("watch deliveries for the unfinished count: %w", err)
	}
	return u, nil
}

// NewUnfinished returns an empty count (WatchUnfinished feeds one from a cache).
func NewUnfinished(clk clock.PassiveClock) *Unfinished {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Unfinished{clock: clk, subs: map[unfinishedKey]*unfinishedSet{}, reserving: map[unfinishedKey]*unfinishedSet{}}
}

// observe records a delivery's latest state.
func (u *Unfinished) observe(o any, deleted bool) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o, deleted = t.Obj, true
	}
	d, ok := o.(*hookpostv1.WebhookDelivery)
	if !ok {
		return
	}
	key := unfinishedKey{d.Namespace, d.Spec.SubscriptionName}
	u.mu.Lock()
	defer u.mu.Unlock()
	if deleted || d.Status.Phase.Finished() {
		u.remove(key, d.Name, false)
		return
	}
	u.set(key, d.Name, time.Time{})
}

// Total is the number of unfinished deliveries, for the hookpost_unfinished_deliveries gauge and the
// cluster-wide cap.
func (u *Unfinished) Total() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.expireAll()
	return u.total
}

// Count is the number of sub's unfinished deliveries.
func (u *Unfinished) Count(sub *Subscription) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.count(unfinishedKey{sub.Namespace, sub.Name})
}

// reserve counts the delivery named name of sub before it is created, unless that would take sub past perSub or
// every subscription past total; false when it would. A delivery already counted is admitted.
func (u *Unfinished) reserve(sub *Subscription, name string, perSub, total int) bool {
	key := unfinishedKey{sub.Namespace, sub.Name}
	u.mu.Lock()
	defer u.mu.Unlock()
	if s := u.subs[key]; s != nil {
		if _, ok := s.names[name]; ok {
			return true
		}
	}
	u.expireAll()
	if u.count(key) >= perSub || u.total >= total {
		return false
	}
	u.set(key, name, u.clock.Now().Add(reservationTTL))
	return true
}

// created marks a reserved delivery as made: it stays counted until the cache says it finished or is gone.
func (u *Unfinished) created(sub *Subscription, name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.set(unfinishedKey{sub.Namespace, sub.Name}, name, time.Time{})
}

// release drops a reservation whose delivery was not created (a first attempt that succeeded, a refusal, an
// error); a delivery the cache or a create showed is kept.
func (u *Unfinished) release(sub *Subscription, name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.remove(unfinishedKey{sub.Namespace, sub.Name}, name, true)
}

func (u *Unfinished) count(key unfinishedKey) int {
	s := u.subs[key]
	if s == nil {
		return 0
	}
	u.expire(key, s)
	return len(s.names)
}

func (u *Unfinished) set(key unfinishedKey, name string, reservedUntil time.Time) {
	s := u.subs[key]
	if s == nil {
		s = &unfinishedSet{names: map[string]time.Time{}}
		u.subs[key] = s
	}
	prev, ok := s.names[name]
	switch {
	case !ok:
		u.total++
	case !prev.IsZero():
		s.reserved--
	}
	if !reservedUntil.IsZero() {
		s.reserved++
	}
	s.names[name] = reservedUntil
	u.track(key, s)
}

// track keeps reserving current for key.
func (u *Unfinished) track(key unfinishedKey, s *unfinishedSet) {
	if s.reserved > 0 && len(s.names) > 0 {
		u.reserving[key] = s
		return
	}
	delete(u.reserving, key)
}

func (u *Unfinished) remove(key unfinishedKey, name string, onlyReserved bool) {
	s := u.subs[key]
	if s == nil {
		return
	}
	until, ok := s.names[name]
	if !ok || (onlyReserved && until.IsZero()) {
		return
	}
	if !until.IsZero() {
		s.reserved--
	}
	delete(s.names, name)
	u.total--
	u.track(key, s)
	if len(s.names) == 0 {
		delete(u.subs, key)
	}
}

// expire ends the reservations of key past their time.
func (u *Unfinished) expire(key unfinishedKey, s *unfinishedSet) {
	if s.reserved == 0 {
		return
	}
	now := u.clock.Now()
	for name, until := range s.names {
		if !until.IsZero() && now.After(until) {
			u.remove(key, name, true)
		}
	}
}

// expireAll ends every reservation past its time, so the total is right; it walks only subscriptions holding
// reservations, which are those with deliveries being created.
func (u *Unfinished) expireAll() {
	for key, s := range u.reserving {
		u.expire(key, s)
	}
}
