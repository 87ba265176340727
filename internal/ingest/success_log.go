package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
)

// DefaultFlushInterval is how often the SuccessLog writes, per subscription: the newest successes as objects and
// the counters into status.
const DefaultFlushInterval = 5 * time.Second

// flushTimeout bounds one flush, and the last one at shutdown.
const flushTimeout = 30 * time.Second

// maxPacing bounds how long a periodic flush spreads its object creates over.
const maxPacing = 2 * time.Second

// flushWriters bounds the object creates of a flush in flight at once.
const flushWriters = 8

// DefaultObjectsPerSecond bounds the success objects written per subscription and second: each is a create and a
// status write (and later a delete), and on a busy subscription they would cost the API server more than the
// deliveries themselves.
const DefaultObjectsPerSecond = 4

// DefaultObjectsPerFlush bounds the success objects one flush writes across all subscriptions, so that fan-out to
// many subscriptions does not turn into thousands of API writes per interval.
const DefaultObjectsPerFlush = 1000

// SuccessLog keeps the deliveries that succeeded on their first attempt without an API write per delivery. Per
// subscription and flush interval it writes objects only for the newest successes: at most
// spec.history.succeededLimit (older ones would be pruned at once) and at most ObjectsPerSecond times the
// interval, so a busy subscription's objects are a bounded sample of its newest. It adds the others to
// status.deliveredWithoutObject, with lastSuccessTime, in one status write. It is a manager.Runnable that runs on every replica: each counts what it
// delivered.
//
// Counters are kept in memory until flushed: a crash loses at most one interval's counts (never a delivery; the
// ledger, when configured, has every attempt).
type SuccessLog struct {
	client     client.Client
	sealer     *controller.Sealer
	direct     client.Reader
	interval   time.Duration
	maxObjects int
	// perSubscription bounds one subscription's objects per flush (from SuccessLogOptions.ObjectsPerSecond).
	perSubscription int

	mu   sync.Mutex
	subs map[types.NamespacedName]*successes
}

// successes are one subscription's successes since the last flush.
type successes struct {
	sub *Subscription
	// ring holds the newest successes, at most its capacity (see capacity), overwriting the oldest; next is where
	// the next one goes once it is full. Flush turns it into newest, oldest first.
	ring   []success
	next   int
	newest []success
	// counted are successes that will get no object; carried is the part of it a failed flush carried over,
	// already in the metrics.
	counted, carried int64
	// last is when the latest success started (lastSuccessTime's meaning).
	last time.Time
}

// capacity is how many of a subscription's successes may become objects in one flush.
func (l *SuccessLog) capacity(sub *Subscription) int {
	return min(max(sub.SucceededLimit, 0), l.perSubscription)
}

// add keeps sc among the newest size successes; one pushed out is counted instead.
func (s *successes) add(sc success, size int) {
	switch {
	case size == 0:
		s.counted++
	case len(s.ring) < size:
		s.ring = append(s.ring, sc)
	default:
		s.ring[s.next] = sc
		s.next = (s.next + 1) % size
		s.counted++
	}
}

// takeNewest moves the ring's successes into newest, oldest first.
func (s *successes) takeNewest() {
	s.newest = append(s.ring[s.next:len(s.ring):len(s.ring)], s.ring[:s.next]...)
	s.ring, s.next = nil, 0
}

type success struct {
	ev    source.Event
	first controller.FirstAttempt
}

// SuccessLogOptions configure a SuccessLog.
type SuccessLogOptions struct {
	// Client writes objects and status; Direct reads subscriptions afresh (the manager's API reader) when a status
	// write conflicts.
	Client client.Client
	Direct client.Reader
	// Sealer seals the success objects, so a replay of one is sent as a real event.
	Sealer *controller.Sealer
	// Interval between flushes (default DefaultFlushInterval).
	Interval time.Duration
	// MaxObjectsPerFlush bounds the objects one flush writes across all subscriptions (default
	// DefaultObjectsPerFlush); past it, each subscription keeps an equal share of its newest.
	MaxObjectsPerFlush int
	// ObjectsPerSecond bounds the objects written per subscription and second, averaged over a flush interval
	// (default DefaultObjectsPerSecond; negative: no bound but spec.history.succeededLimit).
	ObjectsPerSecond int
}

// NewSuccessLog returns a SuccessLog configured by o.
func NewSuccessLog(o SuccessLogOptions) *SuccessLog {
	if o.Interval <= 0 {
		o.Interval = DefaultFlushInterval
	}
	if o.MaxObjectsPerFlush <= 0 {
		o.MaxObjectsPerFlush = DefaultObjectsPerFlush
	}
	if o.ObjectsPerSecond == 0 {
		o.ObjectsPerSecond = DefaultObjectsPerSecond
	}
	perSubscription := o.MaxObjectsPerFlush
	if o.ObjectsPerSecond > 0 {
		perSubscription = min(perSubscription, max(int(float64(o.ObjectsPerSecond)*o.Interval.Seconds()), 1))
	}
	return &SuccessLog{client: o.Client, sealer: o.Sealer, direct: o.Direct, interval: o.Interval, maxObjects: o.MaxObjectsPerFlush,
		perSubscription: perSubscription, subs: map[types.NamespacedName]*successes{}}
}

// NeedLeaderElection is false: every replica flushes what it delivered.
func (l *SuccessLog) NeedLeaderElection() bool { return false }

// Add records a success of ev to sub.
func (l *SuccessLog) Add(sub *Subscription, ev *source.Event, first controller.FirstAttempt) {
	key := types.NamespacedName{Namespace: sub.Namespace, Name: sub.Name}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.subs[key]
	if s == nil || s.sub.UID != sub.UID {
		s = &successes{sub: sub}
		l.subs[key] = s
	}
	s.sub = sub
	s.add(success{ev: *ev, first: first}, l.capacity(sub))
	if first.Start.After(s.last) {
		s.last = first.Start
	}
}

// Start flushes every interval until ctx ends, then once more.
func (l *SuccessLog) Start(ctx context.Context) error {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			err := l.Flush(fctx)
			cancel()
			return err
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, flushTimeout)
			if err := l.flush(fctx, min(l.interval/2, maxPacing)); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "Flushing succeeded deliveries; counts kept for the next flush")
			}
			cancel()
		}
	}
}

// Flush writes what was added since the last flush. What cannot be written is kept for the next one: an object
// that cannot be created is counted instead, a status write that fails is retried.
func (l *SuccessLog) Flush(ctx context.Context) error {
	return l.flush(ctx, 0)
}

// flush is Flush spreading the object creates over pacing (0: at once), so a flush is not a burst of API
// writes that holds up the attempts sharing the machine and the API server.
func (l *SuccessLog) flush(ctx context.Context, pacing time.Duration) error {
	l.mu.Lock()
	pending := l.subs
	l.subs = map[types.NamespacedName]*successes{}
	l.mu.Unlock()
	for _, s := range pending {
		s.takeNewest()
	}
	total := shareObjects(pending, l.maxObjects)
	var turn <-chan time.Time
	if pacing > 0 && total > 0 {
		t := time.NewTicker(max(pacing/time.Duration(total), time.Millisecond))
		defer t.Stop()
		turn = t.C
	}
	var errs []error
	for key, s := range pending {
		written := l.writeObjects(ctx, s, turn)
		metrics.SuccessObjects(written, int(s.counted-s.carried))
		if err := l.writeStatus(ctx, key, s); err != nil {
			errs = append(errs, err)
			l.keep(key, s)
		}
	}
	return errors.Join(errs...)
}

// shareObjects trims the subscriptions' newest successes to at most max objects in all, each keeping an equal
// share of its newest (a share another leaves unused goes to the rest); the trimmed ones are counted instead. It
// returns how many objects are left to write.
func shareObjects(pending map[types.NamespacedName]*successes, max int) int {
	total := 0
	for _, s := range pending {
		total += len(s.newest)
	}
	if total <= max {
		return total
	}
	subs := make([]*successes, 0, len(pending))
	for _, s := range pending {
		subs = append(subs, s)
	}
	// Fewest first: a subscription below its share leaves the rest to those after it.
	slices.SortFunc(subs, func(a, b *successes) int { return len(a.newest) - len(b.newest) })
	left := max
	for i, s := range subs {
		share := left / (len(subs) - i)
		if over := len(s.newest) - share; over > 0 {
			s.counted += int64(over)
			s.newest = s.newest[over:]
		}
		left -= len(s.newest)
	}
	return max - left
}

// writeObjects creates an object for each of the newest successes, already Succeeded through its first-attempt
// annotation. Those that cannot be created are moved to the count; it returns how many were written.
// A create waits for turn when it is not nil.
func (l *SuccessLog) writeObjects(ctx context.Context, s *successes, turn <-chan time.Time) int {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written int
		slots   = make(chan struct{}, flushWriters)
	)
	for i := range s.newest {
		if turn != nil {
			select {
			case <-turn:
			case <-ctx.Done():
			}
		}
		wg.Add(1)
		slots <- struct{}{}
		go func(sc *success) {
			defer func() { <-slots; wg.Done() }()
			err := l.client.Create(ctx, deliveryWithFirstAttempt(ctx, s.sub, &sc.ev, sc.first, l.sealer))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				written++
			case apierrors.IsAlreadyExists(err):
				// An earlier hand-over of the event made it; that object counts the delivery.
			default:
				s.counted++
			}
		}(&s.newest[i])
	}
	wg.Wait()
	s.newest = nil
	return written
}

// writeStatus adds the count and the last success time to the subscription's status, with an optimistic lock:
// the subscription controller writes the same counters.
func (l *SuccessLog) writeStatus(ctx context.Context, key types.NamespacedName, s *successes) error {
	if s.counted == 0 && s.last.IsZero() {
		return nil
	}
	for try := 0; ; try++ {
		sub := &hookpostv1.WebhookSubscription{}
		if err := l.direct.Get(ctx, key, sub); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("read subscription %s to count its deliveries: %w", key, err)
		}
		if string(sub.UID) != s.sub.UID {
			return nil // deleted and made anew: the counts belonged to the old one
		}
		before := sub.DeepCopy()
		addSuccesses(&sub.Status, s.counted, s.last)
		err := l.client.Status().Patch(ctx, sub, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) || try >= 4 {
			return fmt.Errorf("count succeeded deliveries of subscription %s: %w", key, err)
		}
	}
}

// keep puts s's counts back to be written next time, merged with what arrived meanwhile. Counts of a subscription
// deleted and created anew under the same name are dropped: they belonged to the old one.
func (l *SuccessLog) keep(key types.NamespacedName, s *successes) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.carried = s.counted
	cur := l.subs[key]
	switch {
	case cur == nil:
		l.subs[key] = s
	case cur.sub.UID == s.sub.UID:
		cur.counted += s.counted
		cur.carried += s.counted
		if s.last.After(cur.last) {
			cur.last = s.last
		}
	}
}

// addSuccesses folds n successes without an object, the latest started at last, into a subscription's status.
func addSuccesses(st *hookpostv1.WebhookSubscriptionStatus, n int64, last time.Time) {
	st.DeliveredWithoutObject += n
	st.Delivered += n
	if last.IsZero() {
		return
	}
	t := metav1.NewTime(last)
	if st.LastSuccessTime == nil || t.After(st.LastSuccessTime.Time) {
		st.LastSuccessTime = &t
	}
	if st.LastDeliveryTime == nil || t.After(st.LastDeliveryTime.Time) {
		st.LastDeliveryTime = &t
	}
	if st.LastFailureTime == nil || t.After(st.LastFailureTime.Time) {
		st.ConsecutiveFailures = 0
	}
}
