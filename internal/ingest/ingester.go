package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/filter"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
)

// defaultSucceededLimit is spec.history.succeededLimit's default, for objects stored before it had one.
const defaultSucceededLimit = 100

// defaultBatchesInFlight is Options.BatchesInFlight's default.
const defaultBatchesInFlight = 4

// beforeAckTimeout bounds writing the ledger before an Ack, so a slow ledger cannot keep a batch from being acknowledged.
const beforeAckTimeout = 5 * time.Second

// ackTimeout bounds acknowledging a batch whose matches are all done, even while shutting down: an
// unacknowledged batch is handed over again and its successes sent twice.
const ackTimeout = 10 * time.Second

// idleWait is how long a source must have had nothing to hand over for ingest to count as caught up.
const idleWait = time.Second

// detachAfter is how long a batch holds its place among the batches in flight. A batch still waiting after it
// (usually on first attempts to a hanging endpoint, for up to the subscription's timeout) gives its place to the
// next batch and finishes in the background, so a hanging endpoint cannot stop ingest for everyone. A batch gives
// its place sooner when all it still waits for is HTTP attempts in flight (see batchPlace). At most
// detachedPerBatchInFlight x BatchesInFlight x BatchSize events are in detached batches at once, which bounds
// memory when everything is slow (an API server that does not answer); counting events rather than batches lets
// the small batches of a light load (an event or two each, many of them waiting on a hanging endpoint's slots at
// a fault's onset) all detach.
const (
	detachAfter              = 250 * time.Millisecond
	detachedPerBatchInFlight = 4
)

// maxLaterPerBatch bounds the work a batch's dispatches hand to later that may wait at once; past it a dispatch
// waits to hand more.
const maxLaterPerBatch = 4096

// Options tune an Ingester.
type Options struct {
	// BatchSize is the most events claimed from the source at once (default 500).
	BatchSize int
	// Parallelism bounds dispatches in flight per batch (default 32), besides AttemptSlots.
	Parallelism int
	// AttemptSlots is how many of a batch's dispatches may be HTTP attempts in flight on top of Parallelism: the
	// Sender's global slots when the dispatcher makes first attempts, 0 otherwise. An attempt to a hanging
	// endpoint holds its dispatch for up to the subscription's timeout; with this headroom, attempts hanging on
	// every slot still leave Parallelism dispatches for the batch's other matches.
	AttemptSlots int
	// BatchesInFlight bounds batches worked on at once (default 4): a batch waiting on its slowest attempt does
	// not hold up the events behind it.
	BatchesInFlight int
	// RetryDelay is how long a batch waits after a failed dispatch before the source hands it over again
	// (default 5s).
	RetryDelay time.Duration
	// Clock reads the time for the lag metric and idle detection (default the real clock).
	Clock clock.PassiveClock
	// TenantIsolation delivers an event only to subscriptions whose namespace is granted its tenant
	// (AnnotationTenants; see controller.TenantGrant.Allows for events without one).
	TenantIsolation bool
	// Ledger is written (ledger.Flush) after every match of a batch is done and before the batch is
	// acknowledged, so the history of an acknowledged event survives a crash. A failed write is logged and the
	// batch acknowledged anyway: the deliveries are done, and the ledger keeps retrying what it holds. nil: none.
	Ledger ledger.Recorder
}

// Ingester is a manager.Runnable that moves events from one source to WebhookDeliveries.
type Ingester struct {
	src        source.Source
	cache      cache.Cache
	dispatcher Dispatcher
	opts       Options

	// index is rebuilt from the cache when a subscription changes; dirty says it must be.
	mu    sync.Mutex
	index *Index
	dirty atomic.Bool
	// filters holds the compiled spec.filter.expression of the subscriptions in index, by expression text, so a
	// rebuild compiles only the expressions that are new; subscriptions with the same text share one program.
	filters map[string]compiledFilter
	// keys holds the compiled spec.ordering.key of the subscriptions in index, as filters does the expressions.
	keys map[string]compiledFilter

	// detached counts the events of batches finishing in the background, without a place among the batches in
	// flight.
	detached    atomic.Int64
	maxDetached int64
}

// New returns an Ingester reading src, matching against the subscriptions in c and dispatching with d.
func New(src source.Source, c cache.Cache, d Dispatcher, opts Options) *Ingester {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 32
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 5 * time.Second
	}
	if opts.BatchesInFlight <= 0 {
		opts.BatchesInFlight = defaultBatchesInFlight
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	i := &Ingester{src: src, cache: c, dispatcher: d, opts: opts, maxDetached: int64(opts.BatchesInFlight * detachedPerBatchInFlight * opts.BatchSize)}
	i.dirty.Store(true)
	return i
}

// NeedLeaderElection is false: every replica ingests and makes first attempts, sharing the source (leased outbox
// rows, a shared durable consumer), and idempotent names keep two replicas from making one event's delivery twice.
func (i *Ingester) NeedLeaderElection() bool { return false }

// Start runs until ctx ends, then closes the source.
func (i *Ingester) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithValues("source", i.src.Name())
	ctx = ctrl.LoggerInto(ctx, log)
	defer func() { _ = i.src.Close() }()

	// Status writes (counters, on every delivery) do not change matching; only spec and deletion do.
	subscriptionChanged := func(o, n any) bool {
		old, ok1 := o.(*hookpostv1.WebhookSubscription)
		cur, ok2 := n.(*hookpostv1.WebhookSubscription)
		return !ok1 || !ok2 || old.Generation != cur.Generation || (old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil)
	}
	forget := func(o any) {
		if f, ok := i.dispatcher.(interface{ Forget(types.UID) }); ok {
			if s, ok := o.(*hookpostv1.WebhookSubscription); ok {
				f.Forget(s.UID)
			}
		}
		if s, ok := o.(*hookpostv1.WebhookSubscription); ok {
			metrics.ForgetSubscription(s.Namespace, s.Name)
		}
	}
	if err := i.rebuildOn(ctx, &hookpostv1.WebhookSubscription{}, subscriptionChanged, forget); err != nil {
		return fmt.Errorf("watch subscriptions: %w", err)
	}
	if i.opts.TenantIsolation {
		grantChanged := func(o, n any) bool {
			old, ok1 := o.(*corev1.Namespace)
			cur, ok2 := n.(*corev1.Namespace)
			return !ok1 || !ok2 || old.Annotations[hookpostv1.AnnotationTenants] != cur.Annotations[hookpostv1.AnnotationTenants]
		}
		if err := i.rebuildOn(ctx, &corev1.Namespace{}, grantChanged, nil); err != nil {
			return fmt.Errorf("watch namespaces for tenant grants: %w", err)
		}
	}
	if !i.cache.WaitForCacheSync(ctx) {
		return nil
	}
	log.Info("Ingesting events", "tenantIsolation", i.opts.TenantIsolation)
	// Batches are worked on side by side: each is acknowledged on its own once its matches are done, so one
	// waiting on a slow receiver does not hold up the next. The source's batches are disjoint.
	var inFlight sync.WaitGroup
	defer inFlight.Wait() // before the source closes
	slots := make(chan struct{}, i.opts.BatchesInFlight)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		asked := i.opts.Clock.Now()
		b, err := i.src.Next(ctx, i.opts.BatchSize)
		if i.opts.Clock.Since(asked) > idleWait {
			// The source had nothing for a while: ingest has caught up with the producers.
			metrics.SourceCaughtUp(i.src.Name())
		}
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read events from %s: %w", i.src.Name(), err)
		}
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			done, detach := i.holdPlace(slots, len(b.Events()))
			defer done()
			place := &batchPlace{detach: detach}
			if err := i.handle(context.WithValue(ctx, batchPlaceKey{}, place), place, b); err != nil && ctx.Err() == nil {
				log.Error(err, "Batch handed back to the source", "events", len(b.Events()), "retryIn", i.opts.RetryDelay.String())
			}
		}()
	}
}

// holdPlace keeps a batch's place among the batches in flight (a value in slots) until done is called, or until
// detach is called or detachAfter has passed, while fewer than maxDetached events are in detached batches: then
// the place goes to the next batch, and done only counts the detached batch's events out. detachAfter is
// measured on the wall clock, like an attempt's duration: it is how long the batch actually waited.
func (i *Ingester) holdPlace(slots chan struct{}, events int) (done, detach func()) {
	var mu sync.Mutex
	held, detached := true, false
	n := int64(events)
	detach = func() {
		mu.Lock()
		defer mu.Unlock()
		if !held || i.detached.Add(n) > i.maxDetached {
			if held {
				i.detached.Add(-n)
			}
			return
		}
		held, detached = false, true
		<-slots
	}
	t := time.AfterFunc(detachAfter, detach)
	return func() {
		t.Stop()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case held:
			held = false
			<-slots
		case detached:
			i.detached.Add(-n)
		}
	}, detach
}

// batchPlace follows what a batch still waits for, and gives up its place among the batches in flight (detach)
// as soon as every match is dispatched and all that is unfinished is HTTP attempts in flight: those hold their
// host's, namespace's and global slots, which bound them, and the next batch needs none of what they hold. A
// batch at a hanging endpoint's onset (its attempts out, every slot still seemingly healthy) thus lets the events
// behind it go at once, rather than after detachAfter. A batch with dispatches still to start, waiting for a slot
// or writing objects keeps its place, so a saturated host or API server still holds new batches back.
type batchPlace struct {
	detach func()

	mu sync.Mutex
	// open counts dispatches and late work not finished; attempting those in an HTTP attempt.
	open, attempting int
	dispatched       bool
}

type batchPlaceKey struct{}

// begin counts a dispatch or late work in.
func (p *batchPlace) begin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open++
}

// end counts a dispatch or late work out.
func (p *batchPlace) end() { p.update(func() { p.open-- }) }

// allDispatched says every match of the batch has been handed to a dispatcher.
func (p *batchPlace) allDispatched() { p.update(func() { p.dispatched = true }) }

func (p *batchPlace) update(change func()) {
	p.mu.Lock()
	change()
	only := p.dispatched && p.open > 0 && p.open == p.attempting
	p.mu.Unlock()
	if only {
		p.detach()
	}
}

// attemptInFlight tells the batch ctx belongs to that a dispatch is making an HTTP attempt, until the returned
// function is called.
func attemptInFlight(ctx context.Context) (done func()) {
	p, ok := ctx.Value(batchPlaceKey{}).(*batchPlace)
	if !ok {
		return func() {}
	}
	p.update(func() { p.attempting++ })
	return func() { p.update(func() { p.attempting-- }) }
}

// detachBatch gives the place of the batch ctx belongs to among the batches in flight to the next batch now,
// rather than after detachAfter: a dispatch calls it before it waits (for an attempt slot of a full host), so
// events claimed after it are not held up for as long as it waits. The batch is still acknowledged only once
// all its matches are done.
func detachBatch(ctx context.Context) {
	if p, ok := ctx.Value(batchPlaceKey{}).(*batchPlace); ok {
		p.detach()
	}
}

// lateWork runs what a batch's dispatches hand to Later, beside the dispatchers and parallelism at a time, under
// the batch's context (not the dispatchers', which ends when they are all done).
type lateWork struct {
	ctx   context.Context
	g     *errgroup.Group
	slots chan struct{}
	place *batchPlace
}

func newLateWork(ctx context.Context, place *batchPlace, parallelism int) *lateWork {
	g, gctx := errgroup.WithContext(ctx)
	// The group bounds how much may wait to run; past it a dispatch waits to hand more.
	g.SetLimit(maxLaterPerBatch)
	return &lateWork{ctx: gctx, g: g, slots: make(chan struct{}, parallelism), place: place}
}

func (l *lateWork) later(work func(ctx context.Context) error) {
	l.place.begin()
	l.g.Go(func() error {
		defer l.place.end()
		select {
		case l.slots <- struct{}{}:
		case <-l.ctx.Done():
			return l.ctx.Err()
		}
		defer func() { <-l.slots }()
		return work(l.ctx)
	})
}

func (l *lateWork) wait() error { return l.g.Wait() }

// handle dispatches every match of a batch, then settles it: Ack only when all are done.
func (i *Ingester) handle(ctx context.Context, place *batchPlace, b source.Batch) error {
	idx, err := i.currentIndex(ctx)
	if err != nil {
		return errors.Join(err, b.Nack(context.WithoutCancel(ctx), i.opts.RetryDelay, err))
	}
	events := b.Events()
	metrics.ObserveLag(i.src.Name(), events, i.opts.Clock.Now())
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(i.opts.Parallelism + i.opts.AttemptSlots)
	late := newLateWork(ctx, place, i.opts.Parallelism)
	var matches []*Subscription
	dispatched := 0
	for k := range events {
		ev := &events[k]
		matches = idx.Match(Event{Type: ev.Type, TenantID: ev.TenantID, Collection: ev.Collection, OccurredAt: ev.OccurredAt}, matches[:0])
		matches = contentFilter(ctx, ev, matches)
		for _, sub := range matches {
			dispatched++
			place.begin()
			g.Go(func() error {
				defer place.end()
				return i.dispatcher.Dispatch(gctx, sub, ev, late.later)
			})
		}
	}
	place.allDispatched()
	err = g.Wait()
	if err = errors.Join(err, late.wait()); err != nil {
		return errors.Join(err, b.Nack(context.WithoutCancel(ctx), i.opts.RetryDelay, err))
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), beforeAckTimeout)
	err = ledger.Flush(bctx, i.opts.Ledger)
	cancel()
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Ledger not written before acknowledging a batch; its rows stay buffered and are retried")
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := b.Ack(actx); err != nil {
		// Every match got a 2xx or a durable delivery; the source hands the events over again, which re-sends the
		// successes (same X-Event-Id) and finds the deliveries already there.
		return fmt.Errorf("acknowledge batch: %w", err)
	}
	metrics.ObserveBatch(i.src.Name(), events, dispatched)
	ctrl.LoggerFrom(ctx).V(1).Info("Batch ingested", "events", len(events), "deliveries", dispatched)
	return nil
}

// currentIndex returns the subscription index, rebuilding it from the cache after a subscription changed.
func (i *Ingester) currentIndex(ctx context.Context) (*Index, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.index != nil && !i.dirty.Load() {
		return i.index, nil
	}
	i.dirty.Store(false)
	list := &hookpostv1.WebhookSubscriptionList{}
	if err := i.cache.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		i.dirty.Store(true)
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	grants, err := i.grants(ctx)
	if err != nil {
		i.dirty.Store(true)
		return nil, err
	}
	subs, filters, keys := forMatching(list.Items, grants, i.filters, i.keys)
	// Expressions no subscription uses any more are dropped with the old maps.
	i.index, i.filters, i.keys = NewIndex(subs), filters, keys
	return i.index, nil
}

// forMatching translates items for matching, with each namespace's tenant grant (grants nil: isolation is off),
// each filter expression and ordering key compiled, reusing the programs of lastFilters and lastKeys; it returns
// the programs of this translation, for the next.
func forMatching(items []hookpostv1.WebhookSubscription, grants map[string]*controller.TenantGrant, lastFilters, lastKeys map[string]compiledFilter) (subs []*Subscription, filters, keys map[string]compiledFilter) {
	subs = make([]*Subscription, 0, len(items))
	filters, keys = map[string]compiledFilter{}, map[string]compiledFilter{}
	for k := range items {
		if s := FromAPI(&items[k]); s != nil {
			if grants != nil {
				// A namespace missing from the cache is granted nothing, like one without the annotation.
				if s.Grant = grants[s.Namespace]; s.Grant == nil {
					s.Grant = &controller.TenantGrant{}
				}
			}
			if s.Expression != "" {
				c := compiled(s.Expression, filters, lastFilters, filter.Compile)
				s.Filter, s.FilterErr = c.program, c.err
			}
			if s.OrderingKey != "" {
				s.Ordering = compiled(s.OrderingKey, keys, lastKeys, filter.CompileKey).program
			}
			subs = append(subs, s)
		}
	}
	return subs, filters, keys
}

// compiled returns expression compiled by compile: from this rebuild's programs (cur), the last rebuild's (last),
// or compiled now; cur then holds it.
func compiled(expression string, cur, last map[string]compiledFilter, compile func(string) (*filter.Program, error)) compiledFilter {
	c, ok := cur[expression]
	if !ok {
		if c, ok = last[expression]; !ok {
			c.program, c.err = compile(expression)
		}
		cur[expression] = c
	}
	return c
}

// compiledFilter is an expression compiled, or why it does not compile.
type compiledFilter struct {
	program *filter.Program
	err     error
}

// rebuildOn marks the index for a rebuild when an object of obj's kind is added or deleted, or updated in a way
// changed reports; deleted, when set, is also told of each deletion.
func (i *Ingester) rebuildOn(ctx context.Context, obj client.Object, changed func(old, cur any) bool, deleted func(any)) error {
	inf, err := i.cache.GetInformer(ctx, obj)
	if err != nil {
		return err
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { i.dirty.Store(true) },
		UpdateFunc: func(o, n any) {
			if changed(o, n) {
				i.dirty.Store(true)
			}
		},
		DeleteFunc: func(o any) {
			i.dirty.Store(true)
			if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = tomb.Obj
			}
			if deleted != nil {
				deleted(o)
			}
		},
	})
	return err
}

// grants reads every namespace's tenant grant under tenant isolation; nil when isolation is off.
func (i *Ingester) grants(ctx context.Context) (map[string]*controller.TenantGrant, error) {
	if !i.opts.TenantIsolation {
		return nil, nil
	}
	list := &corev1.NamespaceList{}
	if err := i.cache.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list namespaces for tenant grants: %w", err)
	}
	out := make(map[string]*controller.TenantGrant, len(list.Items))
	for k := range list.Items {
		g := controller.TenantGrantOf(&list.Items[k])
		out[list.Items[k].Name] = &g
	}
	return out, nil
}

// FromAPI translates a WebhookSubscription for matching; nil for one being deleted.
func FromAPI(s *hookpostv1.WebhookSubscription) *Subscription {
	if s.DeletionTimestamp != nil {
		return nil
	}
	out := &Subscription{Namespace: s.Namespace, Name: s.Name, UID: string(s.UID), CreatedAt: s.CreationTimestamp.Time,
		SucceededLimit: defaultSucceededLimit}
	if l := s.Spec.History.SucceededLimit; l != nil {
		out.SucceededLimit = int(*l)
	}
	for _, p := range s.Spec.Events {
		out.Patterns = append(out.Patterns, string(p))
	}
	if f := s.Spec.Filter; f != nil {
		out.Tenants, out.Collections = set(f.Tenants), set(f.Collections)
		out.Expression = f.Expression
	}
	if o := s.Spec.Ordering; o != nil {
		out.OrderingKey = o.Key
	}
	return out
}

func set(values []string) map[string]bool {
	if len(values) == 0 {
		return nil
	}
	m := make(map[string]bool, len(values))
	for _, v := range values {
		m[v] = true
	}
	return m
}
