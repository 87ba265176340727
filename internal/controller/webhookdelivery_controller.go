package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/signing"
)

// hostBusyRetry is about how soon a delivery whose destination host has no free slot is looked at again. The
// worker is released meanwhile, so a slow host cannot occupy every worker.
const hostBusyRetry = 500 * time.Millisecond

// hostBusyDelay spreads the retries of deliveries waiting on one host over [hostBusyRetry/2, 3*hostBusyRetry/2),
// so they do not come back in lockstep.
func hostBusyDelay() time.Duration {
	return hostBusyRetry/2 + rand.N(hostBusyRetry)
}

// rateLimitNote is the shortest wait for a rate limit booking that is written into the delivery's status (reason
// RateLimited): shorter waits are over before anyone could read them, and writing each would cost an API write per
// attempt of a limited subscription.
const rateLimitNote = 2 * time.Second

// statusWriteTimeout bounds the status write after an attempt.
const statusWriteTimeout = 15 * time.Second

// WebhookDeliveryReconciler makes a delivery's attempts when they are due and records each one in status.
type WebhookDeliveryReconciler struct {
	client.Client
	// APIReader reads from the API server, for a finished delivery whose payload the cache dropped (CacheOptions).
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Sender    *delivery.Sender
	// Secrets reads signing Secrets (metadata cached, data read once per change).
	Secrets *Secrets
	// Sealer tells the deliveries the operator created from hand-made ones, which are sent as test events.
	Sealer *Sealer
	// UserAgent is sent on every attempt, "Hookpost/<version>".
	UserAgent string
	// MaxRetryAfter caps a receiver's Retry-After.
	MaxRetryAfter time.Duration
	// Ledger appends every attempt (ledger.Discard when none is configured).
	Ledger ledger.Recorder
	// MaxConcurrentReconciles bounds deliveries worked on at once.
	MaxConcurrentReconciles int
	// ReplayLimits bound how often replays are sent (zero: the defaults).
	ReplayLimits ReplayLimits
	// Breakers holds each subscription's circuit (spec.circuitBreaker), shared with ingest's first attempts; nil
	// opens none.
	Breakers *delivery.Breakers
	// Watermarks tells an ordered delivery (spec.ordering) whether its source has acknowledged every event before
	// it; nil treats every source as caught up (a process without sources).
	Watermarks Watermarks

	replaysOnce sync.Once
	replays     *replayLimiter

	// written remembers how many attempts this process recorded per delivery, so a reconcile that reads a cache
	// older than its own last write waits instead of sending the same attempt twice.
	written sync.Map // types.NamespacedName -> writtenAttempts

	// booked holds the start each waiting delivery was booked under its subscription's rate limit, until its attempt
	// is made (admit).
	booked sync.Map // types.NamespacedName -> rateBooking

	// barrier tells an ordered delivery whether the cache holds every delivery of its key the watermark promises.
	barrier cacheBarrier
}

// rateBooking is when a delivery object (by UID) may start its next attempt under its subscription's rate limit.
type rateBooking struct {
	uid types.UID
	at  time.Time
}

// writtenAttempts is the attempt count this process last wrote for a delivery object (by UID, since a name can
// be reused by a new object).
type writtenAttempts struct {
	uid      types.UID
	attempts int32
}

// Reconcile follows the house skeleton: get, snapshot, one deferred status patch, phases.
func (r *WebhookDeliveryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	d := &hookpostv1.WebhookDelivery{}
	if err := r.Get(ctx, req.NamespacedName, d); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(req.NamespacedName)
			r.booked.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if w, ok := r.written.Load(req.NamespacedName); ok && w.(writtenAttempts).uid == d.UID && d.Status.Attempts < w.(writtenAttempts).attempts {
		// Our own last status write has not reached the cache yet.
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if dataStripped(d) && replayRequested(d) {
		// The cache keeps a finished delivery without its payload, and a replay sends the payload again: read the
		// whole object, or the receiver would get the event with no data.
		whole := &hookpostv1.WebhookDelivery{}
		if err := r.APIReader.Get(ctx, req.NamespacedName, whole); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("read delivery to replay: %w", err))
		}
		d = whole
	}
	before := d.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(before.Status, d.Status) {
			return
		}
		// The write outlives a shutdown that began during the attempt: an attempt made and not recorded would be
		// made again after a restart.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusWriteTimeout)
		defer cancel()
		if d.Status.Attempts != before.Status.Attempts {
			r.flushLedger(wctx)
		}
		// The patch is computed against d's own metadata: acceptReplay and adopt patch the object first, and a
		// resourceVersion in the patch would make it conditional, so an annotation patched meanwhile (a replay
		// asked for again) would refuse the record of an attempt already sent.
		base := d.DeepCopy()
		base.Status = before.Status
		if err := r.Status().Patch(wctx, d, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			// An error requeues with backoff; a RequeueAfter beside it would be ignored (and warned about).
			res, retErr = ctrl.Result{}, errors.Join(retErr, fmt.Errorf("patch delivery status: %w", err))
			return
		}
		if d.Status.Attempts != before.Status.Attempts {
			r.written.Store(req.NamespacedName, writtenAttempts{uid: d.UID, attempts: d.Status.Attempts})
		}
	}()

	replayed, replayWait, err := r.acceptReplay(ctx, d)
	if err != nil {
		return ctrl.Result{}, err
	}
	if replayWait > 0 {
		// Look again when the deferred replay may go, or sooner if the phases below say so.
		defer func() {
			if retErr == nil && (res.RequeueAfter == 0 || res.RequeueAfter > replayWait) {
				res.RequeueAfter = replayWait
			}
		}()
	}
	if d.Status.Attempts == 0 && d.Annotations[hookpostv1.AnnotationFirstAttempt] != "" {
		if res, folded, err := r.foldFirstAttempt(ctx, d); err != nil || folded {
			return res, err
		}
	}
	if d.Status.Phase.Finished() {
		return ctrl.Result{}, nil
	}
	if d.Status.Phase == "" {
		waiting(&d.Status, hookpostv1.ReasonPending, "waiting for the first attempt")
	}
	att, wait, err := r.prepare(ctx, d)
	if err != nil || att == nil {
		return wait, err
	}
	res, sent := r.attempt(ctx, d, att)
	if !sent && !replayed && replayWait == 0 && !rateLimitNoted(before.Status, d.Status) {
		// Nothing happened: writing the waiting state now would only cost an API write per postponement. (An
		// accepted replay is written: its annotation is already marked as done; so is the first note of a long
		// rate limit wait.)
		d.Status = before.Status
	}
	return res, nil
}

// flushLedger writes the ledger's rows before the status that records their attempts: a crash in between then
// repeats the attempt (and its row) rather than leaving an attempt in status that the ledger lacks. A ledger
// that cannot be written is logged and does not hold the status back; it keeps retrying what it holds.
func (r *WebhookDeliveryReconciler) flushLedger(ctx context.Context) {
	if err := ledger.Flush(ctx, r.Ledger); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Ledger not written before a delivery's status; its rows stay buffered and are retried")
	}
}

// replayRequested reports whether the delivery's replay annotation carries a value not acted on yet.
func replayRequested(d *hookpostv1.WebhookDelivery) bool {
	want := d.Annotations[hookpostv1.AnnotationReplay]
	return want != "" && want != d.Annotations[hookpostv1.AnnotationReplayed]
}

// acceptReplay resets the delivery when its replay annotation carries a value not acted on yet, within the replay
// limits: a replay they defer is left unacknowledged, with wait saying when to look again, so requests made
// meanwhile (new values) merge into the one replay sent then. A request made while an accepted replay has not
// been sent yet is merged into that replay.
func (r *WebhookDeliveryReconciler) acceptReplay(ctx context.Context, d *hookpostv1.WebhookDelivery) (accepted bool, wait time.Duration, err error) {
	if !replayRequested(d) {
		return false, 0, nil
	}
	want := d.Annotations[hookpostv1.AnnotationReplay]
	merge := replayUnsent(d)
	if !merge && !r.bulkReplay(ctx, d, want) {
		now := r.Clock.Now()
		if wait = r.replayLimiter().reserve(d.UID, types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.SubscriptionName}, now); wait > 0 {
			r.deferReplay(ctx, d, want, now.Add(wait))
			return false, wait, nil
		}
	}
	// Mark the value as seen first: if the status write then fails, the delivery is merely not replayed and
	// the user sets a new value; the other order could send the replay twice.
	patch := client.MergeFrom(d.DeepCopy())
	d.Annotations[hookpostv1.AnnotationReplayed] = want
	status := d.Status
	if err := r.Patch(ctx, d, patch); err != nil {
		return false, 0, fmt.Errorf("mark replay %q as accepted: %w", want, err)
	}
	d.Status = status
	meta.RemoveStatusCondition(&d.Status.Conditions, hookpostv1.ConditionReplayDeferred)
	if merge {
		ctrl.LoggerFrom(ctx).Info("Replay merged into the replay not sent yet", "replay", want)
		return true, 0, nil
	}
	d.Status = replay(d.Status)
	ctrl.LoggerFrom(ctx).Info("Replaying delivery", "replay", want, "attempts", d.Status.Attempts)
	return true, 0, nil
}

// bulkReplay reports whether want, d's replay value, is a running WebhookReplay's request to replay d: such a
// replay goes at the WebhookReplay's declared rate instead of the replay limits, which guard against an
// annotation patched in a loop. replayBypassesLimits says why a copied value cannot loop.
func (r *WebhookDeliveryReconciler) bulkReplay(ctx context.Context, d *hookpostv1.WebhookDelivery, want string) bool {
	name, _, _, ok := hookpostv1.ParseReplayValue(want)
	if !ok {
		return false
	}
	rp := &hookpostv1.WebhookReplay{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, rp); err != nil {
		return false
	}
	return replayBypassesLimits(rp, d, want)
}

// replayUnsent reports whether an accepted replay of d has not made its attempt yet.
func replayUnsent(d *hookpostv1.WebhookDelivery) bool {
	return d.Annotations[hookpostv1.AnnotationReplayed] != "" && d.Status.Phase == hookpostv1.DeliveryPending &&
		d.Status.Attempts == d.Status.AttemptsBeforeReplay
}

// deferReplay records in status, and in an Event when the wait begins, that the replay waits until when.
func (r *WebhookDeliveryReconciler) deferReplay(ctx context.Context, d *hookpostv1.WebhookDelivery, want string, until time.Time) {
	l := r.replayLimiter().limits
	msg := fmt.Sprintf("replay %q deferred until %s: at most one replay per delivery every %s (--replay-interval) and %g per minute per subscription, burst %d (--replay-rate, --replay-burst); replays asked for meanwhile are merged into it",
		truncateRunes(want, 64), until.UTC().Format(time.RFC3339), l.Interval, l.PerMinute, l.Burst)
	began := !meta.IsStatusConditionTrue(d.Status.Conditions, hookpostv1.ConditionReplayDeferred)
	meta.SetStatusCondition(&d.Status.Conditions, metav1.Condition{Type: hookpostv1.ConditionReplayDeferred, Status: metav1.ConditionTrue, Reason: hookpostv1.ReasonReplayRateLimited, Message: msg})
	if began {
		ctrl.LoggerFrom(ctx).Info("Replay deferred", "replay", want, "until", until.UTC())
		if r.Recorder != nil {
			r.Recorder.Eventf(d, nil, corev1.EventTypeNormal, hookpostv1.ReasonReplayRateLimited, "Replay", "%s", msg)
		}
	}
}

func (r *WebhookDeliveryReconciler) replayLimiter() *replayLimiter {
	r.replaysOnce.Do(func() { r.replays = newReplayLimiter(r.ReplayLimits) })
	return r.replays
}

// prepare checks the subscription, the secret and the schedule. It returns the attempt to make, or a result
// saying when to look again (the condition says why). The decision is GateFor's; this reads its inputs.
func (r *WebhookDeliveryReconciler) prepare(ctx context.Context, d *hookpostv1.WebhookDelivery) (*pendingAttempt, ctrl.Result, error) {
	sub := &hookpostv1.WebhookSubscription{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.SubscriptionName}, sub); err != nil {
		if apierrors.IsNotFound(err) {
			waiting(&d.Status, hookpostv1.ReasonSubscriptionNotFound, fmt.Sprintf("WebhookSubscription %q does not exist in namespace %s; the delivery waits for it", d.Spec.SubscriptionName, d.Namespace))
			return nil, ctrl.Result{}, nil
		}
		return nil, ctrl.Result{}, fmt.Errorf("get subscription: %w", err)
	}
	if err := r.adopt(ctx, d, sub); err != nil {
		return nil, ctrl.Result{}, err
	}
	gate := GateFor(sub)
	if gate.Reason == hookpostv1.ReasonSubscriptionPaused {
		// Held Pending, retrying ones included; nextAttemptTime is kept, so a resumed delivery keeps its schedule.
		d.Status.Phase = hookpostv1.DeliveryPending
	}
	if !gate.Open() {
		waiting(&d.Status, gate.Reason, gate.Message)
		return nil, ctrl.Result{}, nil
	}
	keys, tls, why, err := gate.Credentials(ctx, r.Secrets, sub.Namespace, r.Clock.Now())
	if err != nil {
		return nil, ctrl.Result{}, err
	}
	if why != "" {
		waiting(&d.Status, hookpostv1.ReasonSubscriptionNotReady, fmt.Sprintf("subscription %s cannot send: %s; the delivery waits", sub.Name, why))
		return nil, ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	if next := d.Status.NextAttemptTime; next != nil && next.After(now) {
		return nil, ctrl.Result{RequeueAfter: next.Sub(now)}, nil
	}
	order, err := r.sequence(ctx, d, sub)
	if err != nil {
		return nil, ctrl.Result{}, err
	}
	if !order.Go() {
		// Waiting spends no retry: the phase, attempts and schedule are untouched. A wait for the watermark is
		// usually over within a batch's acknowledgement; it is written only once it lasts, to spare a status
		// write per ordered delivery.
		if order.reason != hookpostv1.ReasonWaitingForSource || order.confirm || now.Sub(d.CreationTimestamp.Time) >= watermarkQuiet {
			waiting(&d.Status, order.reason, order.message)
		}
		return nil, ctrl.Result{RequeueAfter: order.recheck}, nil
	}
	ns, err := ReadNamespace(ctx, r.Client, d.Namespace)
	if err != nil {
		return nil, ctrl.Result{}, err
	}
	return &pendingAttempt{sub: sub, target: TargetFor(sub, ns), keys: keys, tls: tls}, ctrl.Result{}, nil
}

// adopt makes a delivery created by hand (kubectl create) owned by its subscription, as ingest's deliveries are,
// so it goes when the subscription goes. Deliveries that already have a controller are left alone.
func (r *WebhookDeliveryReconciler) adopt(ctx context.Context, d *hookpostv1.WebhookDelivery, sub *hookpostv1.WebhookSubscription) error {
	if metav1.GetControllerOf(d) != nil {
		return nil
	}
	patch := client.MergeFrom(d.DeepCopy())
	status := d.Status
	if err := controllerutil.SetControllerReference(sub, d, r.Scheme()); err != nil {
		return fmt.Errorf("own delivery by its subscription: %w", err)
	}
	if err := r.Patch(ctx, d, patch); err != nil {
		return fmt.Errorf("own delivery by its subscription: %w", err)
	}
	d.Status = status // the patch response carries the stored status; keep this reconcile's changes
	return nil
}

// pendingAttempt is what prepare resolved for an attempt.
type pendingAttempt struct {
	sub    *hookpostv1.WebhookSubscription
	target delivery.Target
	keys   signing.Keys
	tls    delivery.ClientTLS
}

// attempt sends the delivery once and records the outcome; sent is false when the destination host had no free
// slot and nothing was sent.
func (r *WebhookDeliveryReconciler) attempt(ctx context.Context, d *hookpostv1.WebhookDelivery, p *pendingAttempt) (res ctrl.Result, sent bool) {
	log := ctrl.LoggerFrom(ctx)
	test := r.sendsAsTest(d)
	key := p.target.CircuitKey()
	circuit := r.admitCircuit(test, p.target)
	if !circuit.OK {
		// The retry budget is not spent: nothing is sent and the status is left as it is. The subscription's
		// CircuitOpen condition says why; its closing wakes this delivery (subscriptionUnblocks).
		log.V(1).Info("Circuit open; attempt postponed", "until", circuit.RetryAt)
		return ctrl.Result{RequeueAfter: max(circuit.RetryAt.Sub(r.Clock.Now()), time.Millisecond)}, false
	}
	if wait := r.admit(d, p); wait > 0 {
		r.Breakers.Unused(key, circuit)
		log.V(1).Info("Subscription's rate limit used up; attempt booked for later", "wait", wait)
		return ctrl.Result{RequeueAfter: wait}, false
	}
	if r.Sender.HostFull(p.sub.Spec.URL) {
		// Checked before encoding and signing, so waiting on a slow host costs next to nothing.
		r.Breakers.Unused(key, circuit)
		return ctrl.Result{RequeueAfter: hostBusyDelay()}, false
	}
	if test && !d.Spec.Test && d.Status.Attempts == d.Status.AttemptsBeforeReplay {
		r.warnNotSealed(ctx, d, p.sub)
	}
	start := r.Clock.Now()
	att := p.target.Attempt(EventOf(d), p.keys, d.Name, int(d.Status.Attempts)+1, test, start)
	att.TLS = p.tls
	req, err := delivery.BuildRequest(att, r.UserAgent)
	if err != nil {
		// The event cannot be encoded or signed: no attempt can ever succeed, so fail it with the reason. Nothing
		// was sent, so no attempt is counted.
		r.Breakers.Unused(key, circuit)
		r.booked.Delete(client.ObjectKeyFromObject(d))
		d.Status = invalidRequest(d.Status, err, r.Clock.Now())
		metrics.DeliveryFinished(false)
		if r.Recorder != nil {
			r.Recorder.Eventf(d, p.sub, corev1.EventTypeWarning, hookpostv1.ReasonInvalidRequest, "Deliver", "cannot build the request: %v", err)
		}
		return ctrl.Result{}, true
	}
	// An attempt in flight finishes even when the manager is shutting down (within its graceful shutdown
	// period): cutting it off would leave the receiver with a request whose outcome nobody records.
	var out delivery.Outcome
	out, sent = r.Sender.TrySend(context.WithoutCancel(ctx), req, p.target.Timeout, p.target.RetryOn4xx, start)
	if !sent {
		r.Breakers.Unused(key, circuit)
		log.V(1).Info("Destination host busy; attempt postponed")
		return ctrl.Result{RequeueAfter: hostBusyDelay()}, false
	}
	r.booked.Delete(client.ObjectKeyFromObject(d))
	metrics.ObserveAttempt(out)
	if !test {
		r.Breakers.Record(key, p.target.Breaker, circuit, out.Class, r.Clock.Now())
	}
	r.record(ctx, d, p.sub, p.target.Schedule, out, start, r.Clock.Now(), false)
	return r.afterAttempt(d), true
}

// admitCircuit asks the subscription's circuit whether an attempt may go now. Test deliveries pass an open circuit and
// are not counted by it: they are how a person checks an endpoint they fixed.
func (r *WebhookDeliveryReconciler) admitCircuit(test bool, t delivery.Target) delivery.Admission {
	if test {
		return delivery.Admission{OK: true}
	}
	return r.Breakers.Allow(t.CircuitKey(), t.Breaker, r.Clock.Now())
}

// admit returns how long d must wait for its start under its subscription's rate limit (spec.rateLimit); 0 lets
// it go now. The first call books a start (Sender.ReserveRate) that d keeps until its attempt is made: it comes
// back at that time without booking again, so a backlog is woken one delivery at a time at the limit's pace (not
// every waiter for each token), and one that then finds its host busy keeps its turn. Waiting spends no retry:
// the attempt count and the schedule are untouched. A long wait is noted in status once (reason RateLimited).
func (r *WebhookDeliveryReconciler) admit(d *hookpostv1.WebhookDelivery, p *pendingAttempt) time.Duration {
	key := client.ObjectKeyFromObject(d)
	if !p.target.Rate.Limited() {
		r.booked.Delete(key)
		return 0
	}
	now := r.Clock.Now()
	b, ok := r.booked.Load(key)
	if !ok || b.(rateBooking).uid != d.UID {
		b = rateBooking{uid: d.UID, at: r.Sender.ReserveRate(p.target, now)}
		r.booked.Store(key, b)
		if b.(rateBooking).at.After(now) {
			metrics.RateLimited(d.Namespace, p.sub.Name)
		}
	}
	wait := b.(rateBooking).at.Sub(now)
	if wait <= 0 {
		return 0
	}
	if wait >= rateLimitNote {
		rateLimited(&d.Status, p.sub.Name, *p.sub.Spec.RateLimit, b.(rateBooking).at)
	}
	return wait
}

// sendsAsTest reports whether d's attempts carry X-Hookpost-Test: true: a test delivery, and one the operator did
// not create (no valid seal), whatever its spec.test says. Defense in depth behind the admission policy, which
// refuses such deliveries where it is installed.
func (r *WebhookDeliveryReconciler) sendsAsTest(d *hookpostv1.WebhookDelivery) bool {
	return d.Spec.Test || !r.Sealer.Sealed(d)
}

// warnNotSealed says, once per run of attempts, why a delivery that asks to be a real event is sent as a test one.
func (r *WebhookDeliveryReconciler) warnNotSealed(ctx context.Context, d *hookpostv1.WebhookDelivery, sub *hookpostv1.WebhookSubscription) {
	ctrl.LoggerFrom(ctx).Info("Delivery not created by Hookpost (no valid seal); sending it as a test event")
	if r.Recorder != nil {
		r.Recorder.Eventf(d, sub, corev1.EventTypeWarning, hookpostv1.ReasonNotSealed, "Deliver",
			"not created by Hookpost (annotation %s missing or not matching the spec), so sent as a test event with X-Hookpost-Test: true; set spec.test: true on hand-made deliveries, see docs/subscriptions.md", hookpostv1.AnnotationSeal)
	}
}

// foldFirstAttempt records the attempt ingest made before it created the delivery (AnnotationFirstAttempt) as
// the delivery's first, without sending anything; folded is false when the annotation cannot be read, and the
// delivery then proceeds as one never attempted.
func (r *WebhookDeliveryReconciler) foldFirstAttempt(ctx context.Context, d *hookpostv1.WebhookDelivery) (res ctrl.Result, folded bool, err error) {
	first, err := DecodeFirstAttempt(d.Annotations[hookpostv1.AnnotationFirstAttempt])
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "First attempt annotation unreadable; the delivery is attempted again")
		return ctrl.Result{}, false, nil
	}
	sub := &hookpostv1.WebhookSubscription{}
	schedule := scheduleDurations(nil)
	switch err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.SubscriptionName}, sub); {
	case err == nil:
		schedule = TargetFor(sub, nil).Schedule
	case apierrors.IsNotFound(err):
		sub = nil // gone: the default schedule decides, and the delivery goes with the subscription
	default:
		return ctrl.Result{}, false, fmt.Errorf("get subscription: %w", err)
	}
	// Ingest counted the attempt in the metrics when it made it; a success it also counted as finished and wrote
	// to the ledger (this object is one of the newest successes, written for kubectl get).
	r.record(ctx, d, sub, schedule, first.Outcome(), first.Start, first.End, first.Class == delivery.ClassSucceeded)
	return r.afterAttempt(d), true, nil
}

// afterAttempt says when to look at a delivery again after an attempt was recorded.
func (r *WebhookDeliveryReconciler) afterAttempt(d *hookpostv1.WebhookDelivery) ctrl.Result {
	if d.Status.Phase == hookpostv1.DeliveryRetrying && d.Status.NextAttemptTime != nil {
		return ctrl.Result{RequeueAfter: max(d.Status.NextAttemptTime.Sub(r.Clock.Now()), time.Millisecond)}
	}
	return ctrl.Result{}
}

// record writes an outcome into the delivery's status, with transition Events, and appends it to the ledger;
// recorded says ingest already counted the finished delivery and wrote its ledger row. sub may be nil when the
// subscription is gone.
func (r *WebhookDeliveryReconciler) record(ctx context.Context, d *hookpostv1.WebhookDelivery, sub *hookpostv1.WebhookSubscription, schedule []time.Duration, out delivery.Outcome, start, end time.Time, recorded bool) {
	policy := retryPolicy{schedule: schedule, maxRetryAfter: r.MaxRetryAfter}
	var tr transition
	d.Status, tr = recordAttempt(d.Status, out, start, end, policy)
	countFinished := !recorded
	if !recorded {
		a := LedgerAttempt(d, out, start)
		a.Test = r.sendsAsTest(d)
		r.Ledger.Record(a)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Attempt made", "attempt", d.Status.Attempts, "statusCode", out.StatusCode, "class", string(out.Class))
	switch tr {
	case transitionSucceeded:
		if countFinished {
			metrics.DeliveryFinished(true)
		}
	case transitionExhausted, transitionRejected:
		if countFinished {
			metrics.DeliveryFinished(false)
		}
		c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered)
		ctrl.LoggerFrom(ctx).Info("Delivery failed", "attempts", d.Status.Attempts, "reason", c.Reason)
		if r.Recorder != nil {
			var related runtime.Object
			if sub != nil {
				related = sub
			}
			r.Recorder.Eventf(d, related, corev1.EventTypeWarning, c.Reason, "Deliver", "%s", c.Message)
		}
	}
}

// SetupWithManager watches deliveries, for subscription changes that can unblock them their subscription, and for
// an ordered delivery that finished the next one of its key.
func (r *WebhookDeliveryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	inf, err := mgr.GetCache().GetInformer(context.Background(), &hookpostv1.WebhookDelivery{})
	if err != nil {
		return fmt.Errorf("watch deliveries: %w", err)
	}
	observe := toolscache.ResourceEventHandlerFuncs{AddFunc: r.barrier.observe, UpdateFunc: func(_, n any) { r.barrier.observe(n) }, DeleteFunc: r.barrier.observe}
	if _, err := inf.AddEventHandler(observe); err != nil {
		return fmt.Errorf("watch deliveries: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&hookpostv1.WebhookDelivery{}).
		Watches(&hookpostv1.WebhookSubscription{}, handler.EnqueueRequestsFromMapFunc(r.unfinishedDeliveries),
			builder.WithPredicates(subscriptionUnblocks{})).
		Watches(&hookpostv1.WebhookDelivery{}, handler.EnqueueRequestsFromMapFunc(r.orderingSuccessor),
			builder.WithPredicates(orderedFinishes{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		Named("webhookdelivery").
		Complete(r)
}

func (r *WebhookDeliveryReconciler) unfinishedDeliveries(ctx context.Context, o client.Object) []reconcile.Request {
	list := &hookpostv1.WebhookDeliveryList{}
	// Pausing or resuming a subscription with a backlog of tens of thousands lands here: read the cached objects
	// without copying them, only their phase and name are read.
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{IndexDeliverySubscription: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List deliveries of a subscription", "subscriptionName", o.GetName())
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if !list.Items[i].Status.Phase.Finished() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// subscriptionUnblocks passes subscription changes that can let waiting deliveries go: a new subscription, a
// spec change (resume, new URL), a Ready flip (the secret appeared) or a CircuitOpen flip (the circuit closed). Counter updates are ignored, or every
// status write would wake every pending delivery.
type subscriptionUnblocks struct{ predicate.Funcs }

func (subscriptionUnblocks) Create(event.CreateEvent) bool { return true }
func (subscriptionUnblocks) Delete(event.DeleteEvent) bool { return false }
func (subscriptionUnblocks) Update(e event.UpdateEvent) bool {
	o, n := e.ObjectOld.(*hookpostv1.WebhookSubscription), e.ObjectNew.(*hookpostv1.WebhookSubscription)
	return o.Generation != n.Generation || o.Status.ObservedGeneration != n.Status.ObservedGeneration ||
		meta.IsStatusConditionTrue(o.Status.Conditions, hookpostv1.ConditionReady) != meta.IsStatusConditionTrue(n.Status.Conditions, hookpostv1.ConditionReady) ||
		meta.IsStatusConditionTrue(o.Status.Conditions, hookpostv1.ConditionCircuitOpen) != meta.IsStatusConditionTrue(n.Status.Conditions, hookpostv1.ConditionCircuitOpen) ||
		!equality.Semantic.DeepEqual(o.Status.SigningSecretRef, n.Status.SigningSecretRef)
}
func (subscriptionUnblocks) Generic(event.GenericEvent) bool { return false }
