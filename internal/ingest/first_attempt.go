package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/envelope"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
)

// DefaultHostWait is how long a first attempt waits for its destination host (or namespace) to free a slot, with
// none coming free, before the match is handed to the delivery controller instead: a busy healthy receiver frees
// one every few milliseconds, so its matches queue for as long as it keeps doing so; a hanging one frees none.
const DefaultHostWait = 250 * time.Millisecond

// EndpointRoom returns how many parked matches of a subscription the drain may make objects of now, for its
// endpoint: none while its circuit is open or every attempt slot of its host or namespace has hung for
// stuckAfter (the rows stay parked until the endpoint can take deliveries), one while its circuit is half-open (the
// probe: the rest follow once it closes), and no bound (-1) otherwise.
func EndpointRoom(breakers *delivery.Breakers, sender *delivery.Sender, clk clock.PassiveClock) func(*hookpostv1.WebhookSubscription) int {
	return func(sub *hookpostv1.WebhookSubscription) int {
		// Called per subscription and drain round: the key and URL are read, not a whole Target translated.
		if sender.Stuck(sub.Spec.URL, sub.Namespace, stuckAfter) {
			return 0
		}
		switch breakers.State(delivery.CircuitKey(sub.Namespace, sub.Name), clk.Now()).State {
		case delivery.CircuitOpen:
			return 0
		case delivery.CircuitHalfOpen:
			return 1
		}
		return -1
	}
}

// stuckAfter is how long every attempt slot of a destination host (or of a namespace) must have been taken, with
// none coming back, before its endpoints count as hanging: DefaultHostWait, as long as a first attempt waits for a
// slot. A busy healthy host frees a slot far sooner; a slow one that does count is only parked until a slot comes
// back, when the drain makes its rows objects; a hanging one holds its slots for the whole attempt timeout.
const stuckAfter = DefaultHostWait

// createTimeout bounds writing the delivery after an attempt was made, even while shutting down: the attempt's
// outcome would otherwise be lost and the attempt made again.
const createTimeout = 15 * time.Second

// FirstAttemptOptions configure FirstAttempt.
type FirstAttemptOptions struct {
	// Client creates deliveries; Reader reads subscriptions (the manager's cache).
	Client client.Client
	Reader client.Reader
	// Secrets reads signing Secrets.
	Secrets *controller.Secrets
	// Sealer seals each delivery written, so the delivery controller sends it as a real event.
	Sealer *controller.Sealer
	// Sender is the one Sender of the process, shared with the delivery controller.
	Sender *delivery.Sender
	// Successes keeps what succeeded without writing an object per delivery. nil writes an object for every
	// success (--success-objects=all).
	Successes *SuccessLog
	// Ledger appends every success; a failed first attempt is appended by the delivery controller when it moves
	// the attempt into status. nil keeps none (ledger.Discard).
	Ledger ledger.Recorder
	// Refusals reports deliveries the API server refuses for good (default: to the ledger, the condition and the
	// log, without Events).
	Refusals *Refusals
	// UserAgent is sent on every attempt.
	UserAgent string
	// Clock stamps attempts (default the real clock).
	Clock clock.PassiveClock
	// HostWait bounds the wait for a slot for the destination host while none comes free (default DefaultHostWait).
	HostWait time.Duration
	// Breakers holds each subscription's circuit, shared with the delivery controller: a match whose circuit is
	// open is handed over without an attempt. nil opens none.
	Breakers *delivery.Breakers
	// Caps parks or refuses matches past the unfinished-delivery caps, before any attempt; nil admits every match.
	Caps *Caps
}

// FirstAttempt dispatches a match by attempting it at once, through the same Sender, signing and envelope as the
// delivery controller. Only a match that needs an object becomes a WebhookDelivery: one whose first attempt
// failed (created with the attempt in AnnotationFirstAttempt, for the controller's retries), and one that could
// not be attempted (subscription paused or not ready, its circuit open, destination host busy), which the
// controller attempts.
// Successes go to the SuccessLog. Dispatch returns nil only once the match got a 2xx or a durable object, so a
// batch acknowledged after it loses nothing; a crash before that re-sends (at least once, same X-Event-Id).
type FirstAttempt struct {
	o FirstAttemptOptions

	mu      sync.Mutex
	targets map[types.UID]*preparedTarget
}

// preparedTarget is a subscription translated once per resourceVersion of it and its namespace (whose annotations
// say what it may reach): Dispatch runs per match, and both change rarely.
type preparedTarget struct {
	subscriptionVersion, namespaceVersion string
	target                                delivery.Target
	gate                                  controller.Gate
}

// NewFirstAttempt returns a FirstAttempt configured by o.
func NewFirstAttempt(o FirstAttemptOptions) *FirstAttempt {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.HostWait <= 0 {
		o.HostWait = DefaultHostWait
	}
	if o.Ledger == nil {
		o.Ledger = ledger.Discard
	}
	if o.Refusals == nil {
		// A failed attempt whose delivery is refused is in the ledger even without Events.
		o.Refusals = NewRefusals(RefusalsOptions{Client: o.Client, Reader: o.Reader, Ledger: o.Ledger, Clock: o.Clock})
	}
	return &FirstAttempt{o: o, targets: map[types.UID]*preparedTarget{}}
}

// Dispatch attempts ev to sub, or hands it to the delivery controller.
func (f *FirstAttempt) Dispatch(ctx context.Context, sub *Subscription, ev *source.Event, later Later) error {
	if err := ctx.Err(); err != nil {
		// Another match of the batch failed, or shutdown began: the batch is handed back and this match with it,
		// so attempting it now would only send it twice.
		return err
	}
	p, err := f.prepare(ctx, sub)
	if err != nil || p == nil {
		return err
	}
	if exists, err := f.delivered(ctx, sub, ev); err != nil || exists {
		return err
	}
	if sub.OrderingKey != "" {
		f.handOverOrdered(sub, ev, later)
		return nil
	}
	// Past a cap the match is not attempted either: a subscription with parked matches gets its events in order
	// of arrival, after them.
	if admitted, err := f.o.Caps.Admit(ctx, sub, ev); !admitted {
		return err
	}
	key := p.target.CircuitKey()
	circuit := f.o.Breakers.Allow(key, p.target.Breaker, f.o.Clock.Now())
	// An endpoint known to hang is not waited for (HostWait would hold this dispatch, and the healthy matches
	// queued behind it in the batch): the match goes straight to the parking below.
	hanging := circuit.OK && f.o.Sender.Stuck(p.target.URL, sub.Namespace, stuckAfter)
	var req delivery.Request
	var start time.Time
	ok := circuit.OK && !hanging
	if ok {
		if req, start, ok, err = f.request(ctx, sub, ev, p); err != nil {
			f.o.Breakers.Unused(key, circuit)
			return err
		}
	}
	var out delivery.Outcome
	if ok {
		if f.o.Sender.Stuck(p.target.URL, sub.Namespace, 0) {
			// Every slot of its host (or namespace) is taken: this match may wait up to HostWait for one, and
			// the events claimed after this batch need not wait with it.
			detachBatch(ctx)
		}
		// The attempt finishes even when shutdown began (within the graceful shutdown period), and so does
		// writing its outcome: an attempt made and not recorded is made again.
		inAttempt := attemptInFlight(ctx)
		out, ok = f.o.Sender.SendWithin(context.WithoutCancel(ctx), req, p.target.Timeout, p.target.RetryOn4xx, start, f.o.HostWait)
		inAttempt()
	}
	if !ok {
		f.o.Breakers.Unused(key, circuit)
		metrics.FirstAttempt(metrics.FirstAttemptHeld)
		failing := !circuit.OK || hanging || f.o.Sender.Stuck(p.target.URL, sub.Namespace, stuckAfter)
		return f.handOver(ctx, sub, ev, failing, later)
	}
	first := controller.NewFirstAttempt(out, start, f.o.Clock.Now())
	f.o.Breakers.Record(key, p.target.Breaker, circuit, out.Class, first.End)
	return f.recordOutcome(ctx, sub, ev, first)
}

// handOverOrdered gives an ordered match to the delivery controller. It is never attempted here: whether it may
// go depends on the deliveries of its key before it, which the delivery controller sequences. Nor is it parked
// (for an open circuit, a hanging host, or past the caps): its position in its key lives in its object, and the
// controller's circuit holds it as it waits. It counts against the caps all the same. See docs/subscriptions.md,
// Ordered delivery.
func (f *FirstAttempt) handOverOrdered(sub *Subscription, ev *source.Event, later Later) {
	later(func(ctx context.Context) error {
		return createDelivery(ctx, f.o.Client, f.o.Refusals, f.o.Caps, sub, ev, NewDelivery(ctx, sub, ev, f.o.Sealer))
	})
}

// recordOutcome keeps what a first attempt made: a success in the SuccessLog (and the ledger), anything else,
// or a success without a SuccessLog, as a WebhookDelivery carrying the attempt.
func (f *FirstAttempt) recordOutcome(ctx context.Context, sub *Subscription, ev *source.Event, first controller.FirstAttempt) error {
	metrics.ObserveAttempt(first.Outcome())
	if first.Class == delivery.ClassSucceeded {
		metrics.FirstAttempt(metrics.FirstAttemptSucceeded)
		metrics.DeliveryFinished(true)
		f.o.Ledger.Record(attemptRecord(sub, ev, first, ledger.OutcomeSucceeded))
		if f.o.Successes != nil {
			f.o.Successes.Add(sub, ev, first)
			return nil
		}
	} else {
		metrics.FirstAttempt(metrics.FirstAttemptFailed)
		if f.failing(sub, first) {
			if parked, err := f.o.Caps.Park(ctx, sub, ev, &first); parked && err == nil {
				return nil
			}
		}
		// Writing its object is an API round trip: the events claimed after this batch need not wait for it.
		detachBatch(ctx)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	return createAttempted(cctx, f.o.Client, f.o.Refusals, f.o.Caps, f.o.Sealer, sub, ev, first)
}

// parkFailedAfter is how many first attempts in a row must have failed, this one included, for a failed one to be
// parked (with a ledger) rather than written as an object at once: an endpoint failing now and then gets its
// object, and its retry, without the round trip through the drain; one failing on every event, until its circuit
// opens, writes a row per match, not an object.
const parkFailedAfter = 2

// failing reports whether a first attempt that failed (and may be retried) belongs to an endpoint that keeps
// failing: parkFailedAfter in a row by its circuit's count, or its circuit open by now.
func (f *FirstAttempt) failing(sub *Subscription, first controller.FirstAttempt) bool {
	if first.Class != delivery.ClassRetry {
		return false // a rejected delivery fails now, and its object says why
	}
	c := f.o.Breakers.State(delivery.CircuitKey(sub.Namespace, sub.Name), first.End)
	return c.State != delivery.CircuitClosed || c.Consecutive >= parkFailedAfter
}

// handOver gives a match that was not attempted to the delivery controller: its object is written once the
// batch's attempts are done. A match whose endpoint is failing (its circuit open) or hanging is parked instead,
// when there is a ledger: an object per match would be an API write each, at the event rate times the
// endpoints, that the rest of the batch waits for; the drain makes its object as the caps allow. A ledger that
// cannot take the row (its parked table missing, its database down) costs the match its shortcut only: it
// becomes an object as before.
func (f *FirstAttempt) handOver(ctx context.Context, sub *Subscription, ev *source.Event, failing bool, later Later) error {
	if failing {
		if parked, err := f.o.Caps.Park(ctx, sub, ev, nil); parked && err == nil {
			return nil
		}
	}
	later(func(ctx context.Context) error {
		// Counted before it is created, so the matches of a paused subscription stop at its cap.
		release, admitted, err := f.o.Caps.Hold(ctx, sub, ev)
		if !admitted {
			return err
		}
		defer release()
		return createDelivery(ctx, f.o.Client, f.o.Refusals, f.o.Caps, sub, ev, NewDelivery(ctx, sub, ev, f.o.Sealer))
	})
	return nil
}

// createAttempted writes the delivery carrying an attempt already made (by ingest, or parked with it). When the
// API server refuses it for good, a success is delivered all the same (and in the ledger already); a failure is
// not retried, and is reported as refused, its attempt in the ledger with outcome refused, since no delivery
// controller will record it.
func createAttempted(ctx context.Context, c client.Client, refusals *Refusals, caps *Caps, sealer *controller.Sealer, sub *Subscription, ev *source.Event, first controller.FirstAttempt) error {
	reason, err := tryCreate(ctx, c, refusals, caps, sub, ev, deliveryWithFirstAttempt(ctx, sub, ev, first, sealer))
	if reason == "" {
		return err
	}
	if first.Class == delivery.ClassSucceeded {
		// Only its object is missing.
		ctrl.LoggerFrom(ctx).Info("Delivered; its WebhookDelivery was refused by the API server", "eventID", ev.ID, "eventType", ev.Type,
			"subscriptionName", sub.Name, "namespace", sub.Namespace, "reason", reason, "error", err.Error())
		return nil
	}
	refusals.Refused(ctx, sub, ev, reason, err, &first)
	return nil
}

// request builds the first attempt's request; ok is false when the match is to be handed to the delivery
// controller without an attempt: the subscription cannot send now or is over its rate limit (spec.rateLimit; the
// controller books it a later start, so neither this batch nor a worker waits), or the request cannot be built
// (the controller then fails the delivery with the reason).
func (f *FirstAttempt) request(ctx context.Context, sub *Subscription, ev *source.Event, p *preparedTarget) (req delivery.Request, start time.Time, ok bool, err error) {
	if !p.gate.Open() {
		return delivery.Request{}, time.Time{}, false, nil
	}
	keys, tls, why, err := p.gate.Credentials(ctx, f.o.Secrets, sub.Namespace, f.o.Clock.Now())
	if err != nil {
		return delivery.Request{}, time.Time{}, false, fmt.Errorf("subscription %s/%s: %w", sub.Namespace, sub.Name, err)
	}
	if why != "" {
		return delivery.Request{}, time.Time{}, false, nil
	}
	start = f.o.Clock.Now()
	// Taken before the host slot: a match whose host then turns out busy leaves its start unused, which under-uses
	// the limit but never exceeds it.
	if !f.o.Sender.TakeRate(p.target, start) {
		metrics.RateLimited(sub.Namespace, sub.Name)
		return delivery.Request{}, time.Time{}, false, nil
	}
	att := p.target.Attempt(envelopeEvent(ev), keys, hookpostv1.DeliveryName(sub.Name, ev.ID), 1, false, start)
	att.TLS = tls
	req, err = delivery.BuildRequest(att, f.o.UserAgent)
	if err != nil {
		return delivery.Request{}, time.Time{}, false, nil
	}
	return req, start, true, nil
}

// prepare returns the subscription's target and gate, translated again only when the object changed; nil when the
// subscription is gone (its deliveries would go with it).
func (f *FirstAttempt) prepare(ctx context.Context, sub *Subscription) (*preparedTarget, error) {
	obj := &hookpostv1.WebhookSubscription{}
	// The cache's object is only read, never modified: no copy per match.
	if err := f.o.Reader.Get(ctx, types.NamespacedName{Namespace: sub.Namespace, Name: sub.Name}, obj, client.UnsafeDisableDeepCopy); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if string(obj.UID) != sub.UID || obj.DeletionTimestamp != nil {
		return nil, nil
	}
	ns, err := controller.ReadNamespace(ctx, f.o.Reader, sub.Namespace)
	if err != nil {
		return nil, err
	}
	nsVersion := ""
	if ns != nil {
		nsVersion = ns.ResourceVersion
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.targets[obj.UID]
	if p == nil || p.subscriptionVersion != obj.ResourceVersion || p.namespaceVersion != nsVersion {
		p = &preparedTarget{subscriptionVersion: obj.ResourceVersion, namespaceVersion: nsVersion,
			target: controller.TargetFor(obj, ns), gate: controller.GateFor(obj)}
		f.targets[obj.UID] = p
	}
	return p, nil
}

// delivered reports whether the match already has a WebhookDelivery (the event was handed over before and its
// delivery made then), read from the cache: the delivery controller owns it, so ingest must not attempt it again.
func (f *FirstAttempt) delivered(ctx context.Context, sub *Subscription, ev *source.Event) (bool, error) {
	d := &hookpostv1.WebhookDelivery{}
	err := f.o.Reader.Get(ctx, types.NamespacedName{Namespace: sub.Namespace, Name: hookpostv1.DeliveryName(sub.Name, ev.ID)}, d, client.UnsafeDisableDeepCopy)
	if err == nil {
		return true, nil
	}
	return false, client.IgnoreNotFound(err)
}

// Forget drops what was prepared for a deleted subscription.
func (f *FirstAttempt) Forget(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.targets, uid)
	f.o.Refusals.Forget(uid)
}

// deliveryWithFirstAttempt is the delivery of ev to sub carrying its first attempt.
func deliveryWithFirstAttempt(ctx context.Context, sub *Subscription, ev *source.Event, first controller.FirstAttempt, sealer *controller.Sealer) *hookpostv1.WebhookDelivery {
	d := NewDelivery(ctx, sub, ev, sealer)
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[hookpostv1.AnnotationFirstAttempt] = first.Encode()
	return d
}

// attemptRecord is the ledger's record of a first attempt, with what the delivery became.
func attemptRecord(sub *Subscription, ev *source.Event, first controller.FirstAttempt, outcome ledger.Outcome) ledger.Attempt {
	meta := hookpostv1.EventMeta{ID: ev.ID, Type: ev.Type, TenantID: ev.TenantID, Collection: ev.Collection}
	a := controller.AttemptRecord(sub.Namespace, sub.Name, hookpostv1.DeliveryName(sub.Name, ev.ID), meta, 1, first.Outcome(), first.Start)
	a.Outcome = outcome
	return a
}

// envelopeEvent is the event a first attempt sends. Its time is cut to whole seconds, what the WebhookDelivery's
// spec.event.occurredAt holds, so a retry (built from the object) sends the first attempt's bytes.
func envelopeEvent(ev *source.Event) envelope.Event {
	return envelope.Event{ID: ev.ID, Type: ev.Type, TenantID: ev.TenantID, Collection: ev.Collection,
		OccurredAt: ev.OccurredAt.Truncate(time.Second), Data: ev.Data}
}
