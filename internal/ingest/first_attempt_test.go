package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ingest"
	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/internal/signing"
	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// operator is the real operator in-process: both controllers, and ingest making first attempts.
type operator struct {
	successes *ingest.SuccessLog
}

// operatorConfig is what a test changes of the operator's defaults.
type operatorConfig struct {
	// flushInterval of the SuccessLog; tests that count objects flush by hand and set it long.
	flushInterval time.Duration
	// maxPerHost and hostWait bound the first attempt's wait for a busy host (0: the defaults).
	maxPerHost int
	hostWait   time.Duration
	// ledger, when set, gets every attempt, as the binary's ledger writer does, and holds the parked deliveries.
	ledger *ledgerpg.Writer
	// clock stamps attempts and drives rate limits and retries (default the real clock).
	clock clock.PassiveClock
	// namespace, when set, is the only namespace whose objects the operator caches and reconciles: a test whose
	// assertions wait on the delivery controller then does not queue behind the deliveries earlier tests left in
	// the shared cluster.
	namespace string
	// ingestOnly plays a replica that is not the leader: it ingests and makes first attempts, and runs no
	// controller.
	ingestOnly bool
	// maxUnfinished, when set, caps each subscription's unfinished deliveries as the binary does (with the
	// drain when there is a ledger), and refusals get Events.
	maxUnfinished int
	// tenantIsolation is the binary's --tenant-isolation.
	tenantIsolation bool
	// drainParallelism, when set, is the drain's (1: objects made strictly in order of arrival).
	drainParallelism int
}

// startOperator runs the controllers and an ingester per source with the first attempt, as the binary does with
// its defaults, until the test ends.
func startOperator(t testing.TB, cfg operatorConfig, srcs ...source.Source) *operator {
	t.Helper()
	opts := ctrl.Options{Scheme: harness.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		// Each test runs its own operator in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}}
	if cfg.namespace != "" {
		opts.Cache.DefaultNamespaces = map[string]cache.Config{cfg.namespace: {}}
	}
	mgr, err := ctrl.NewManager(cp.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sender := delivery.NewSender(delivery.SenderOptions{MaxPerHost: cfg.maxPerHost})
	breakers := delivery.NewBreakers()
	secrets := controller.NewSecrets(mgr.GetClient(), mgr.GetAPIReader())
	var rec ledger.Recorder = ledger.Discard
	if cfg.ledger != nil {
		rec = cfg.ledger
	}
	// The seal key as the operator reads it: created by the first call, read by the next.
	key, err := controller.LoadSealKey(ctx, cp.Client, "default", controller.DefaultSealSecretName)
	if err != nil {
		t.Fatal(err)
	}
	sealer := controller.NewSealer(key)
	clk := cfg.clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	// WebhookReplays re-read the sources (spec.source) and, with a ledger, find pruned deliveries in it; ordered
	// deliveries ask the sources' watermarks, as the binary's do.
	replays := ingest.NewSourceReplay(mgr.GetCache(), sealer, cfg.tenantIsolation)
	watermarks := source.NewWatermarks(source.DefaultWatermarkTTL)
	for _, src := range srcs {
		kind := hookpostv1.ReplaySourceOutbox
		if src.Name() == natssource.Name {
			kind = hookpostv1.ReplaySourceJetStream
		}
		replays.Add(kind, src.(source.Rereader))
		watermarks.Add(src)
	}
	var pruned ledger.PrunedStore
	if cfg.ledger != nil {
		pruned = cfg.ledger.Pruned()
	}
	// A replica that is not the leader runs ingest only: the controllers run on the leader.
	if !cfg.ingestOnly {
		if err := controller.Setup(ctx, mgr, controller.Options{Clock: clk, Sender: sender, Secrets: secrets,
			Ledger: rec, UserAgent: "Hookpost/test", MaxRetryAfter: time.Hour, DeliveryWorkers: 4, Sealer: sealer, Breakers: breakers,
			TenantIsolation: cfg.tenantIsolation, Pruned: pruned, Sources: replays, Watermarks: watermarks}); err != nil {
			t.Fatal(err)
		}
	}
	op := &operator{successes: ingest.NewSuccessLog(ingest.SuccessLogOptions{Client: mgr.GetClient(), Direct: mgr.GetAPIReader(), Sealer: sealer, Interval: cfg.flushInterval, ObjectsPerSecond: -1})}
	if err := mgr.Add(op.successes); err != nil {
		t.Fatal(err)
	}
	fo := ingest.FirstAttemptOptions{Client: mgr.GetClient(), Reader: mgr.GetCache(), Secrets: secrets,
		Sealer: sealer, Sender: sender, Successes: op.successes, Ledger: rec, UserAgent: "Hookpost/test", HostWait: cfg.hostWait, Clock: clk,
		Breakers: breakers}
	if cfg.maxUnfinished > 0 {
		fo.Refusals, fo.Caps = startCaps(t, ctx, mgr, cfg, rec, sealer, breakers, sender)
	}
	d := ingest.NewFirstAttempt(fo)
	for _, src := range srcs {
		if err := mgr.Add(ingest.New(src, mgr.GetCache(), d, ingest.Options{BatchSize: 100, RetryDelay: 200 * time.Millisecond, TenantIsolation: cfg.tenantIsolation})); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return op
}

// readySubscription creates sub, waits until it is Ready and returns its signing secret.
func readySubscription(t testing.TB, sub *hookpostv1.WebhookSubscription) string {
	t.Helper()
	subscribe(t, sub)
	key := client.ObjectKeyFromObject(sub)
	waitFor(t, "the subscription Ready", func() bool {
		_ = cp.Client.Get(context.Background(), key, sub)
		return meta.IsStatusConditionTrue(sub.Status.Conditions, hookpostv1.ConditionReady) && sub.Status.ObservedGeneration == sub.Generation
	})
	s := &corev1.Secret{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: sub.Namespace, Name: sub.Status.SigningSecretRef.Name}, s); err != nil {
		t.Fatal(err)
	}
	return string(s.Data[sub.Status.SigningSecretRef.Key])
}

func getDelivery(t *testing.T, ns, name string) (*hookpostv1.WebhookDelivery, bool) {
	t.Helper()
	d := &hookpostv1.WebhookDelivery{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return nil, false
	}
	return d, true
}

func getSubscription(t *testing.T, ns, name string) *hookpostv1.WebhookSubscription {
	t.Helper()
	s := &hookpostv1.WebhookSubscription{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFirstAttemptSuccessesNeedNoObjectEach: 20 events to a receiver that answers 200 arrive signed, once each,
// as attempt 1; only the newest succeededLimit (3) become WebhookDelivery objects, Succeeded, and the
// subscription counts all 20.
func TestFirstAttemptSuccessesNeedNoObjectEach(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "orders", rcv.URL+"/orders", fixtures.Events("order.*"), fixtures.InsecureHTTP(), fixtures.HistoryLimits(3, 10))
	src, table := newOutbox(t, postgres.Options{})
	op := startOperator(t, operatorConfig{flushInterval: time.Hour}, src) // flushed by the test, so the objects can be counted before it
	secret := readySubscription(t, sub)

	var rows []row
	for i := range 20 {
		rows = append(rows, row{"order.created", "7", "", fmt.Sprintf(`{"order_id":%d}`, i)})
	}
	ids := insert(t, table, rows...)
	waitFor(t, "20 requests", func() bool { return len(rcv.Requests("/orders")) >= 20 })
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	if got := deliveries(t, ns); len(got) != 0 {
		t.Fatalf("before a flush, successes wrote objects: %v", got)
	}
	seen := map[string]int{}
	for _, r := range rcv.Requests("/orders") {
		seen[r.Header.Get(delivery.HeaderEventID)]++
		if a := r.Header.Get(delivery.HeaderAttempt); a != "1" {
			t.Errorf("X-Hookpost-Attempt = %q, want 1", a)
		}
		if err := signing.VerifyHMACHex([]byte(secret), r.Body, r.Header.Get("X-Webhook-Signature")); err != nil {
			t.Errorf("signature of %s: %v", r.Header.Get(delivery.HeaderEventID), err)
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %s received %d times, want once", id, seen[id])
		}
	}

	if err := op.successes.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := deliveries(t, ns)
	if len(got) != 3 {
		t.Fatalf("after a flush, objects = %v, want the newest 3", got)
	}
	waitFor(t, "the three objects Succeeded with attempt 1 in status", func() bool {
		list := &hookpostv1.WebhookDeliveryList{}
		_ = cp.Client.List(context.Background(), list, client.InNamespace(ns))
		n := 0
		for _, d := range list.Items {
			if d.Status.Phase == hookpostv1.DeliverySucceeded && d.Status.Attempts == 1 && d.Status.History[0].StatusCode == http.StatusOK {
				n++
			}
		}
		return n == 3
	})
	waitFor(t, "the subscription counting all 20", func() bool {
		s := getSubscription(t, ns, "orders")
		return s.Status.Delivered == 20 && s.Status.DeliveredWithoutObject == 17 && s.Status.LastSuccessTime != nil
	})
	if n := len(rcv.Requests("/orders")); n != 20 {
		t.Errorf("receiver got %d requests, want 20: writing the objects sent something again", n)
	}
}

// TestFailedFirstAttemptBecomesADeliveryThatRetries: the first attempt's 500 is attempt 1 of a WebhookDelivery,
// whose retry (attempt 2) the delivery controller makes; nothing is sent a third time.
// TestFirstAttemptCarriesEverySignature: a subscription migrating from hex HMAC to Standard Webhooks gets both hex
// headers and the Standard Webhooks headers on the first attempt made straight from ingest, all keyed with its one
// generated whsec_ secret.
func TestFirstAttemptCarriesEverySignature(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "migrating", rcv.URL+"/migrating", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, ""),
		fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, "X-urBackend-Signature"))
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	secret := readySubscription(t, sub)

	insert(t, table, row{"order.created", "7", "", `{"order_id":1}`})
	waitFor(t, "the first attempt", func() bool { return len(rcv.Requests("/migrating")) >= 1 })
	r := rcv.Requests("/migrating")[0]
	if a := r.Header.Get(delivery.HeaderAttempt); a != "1" {
		t.Errorf("X-Hookpost-Attempt = %q, want 1", a)
	}
	for _, h := range []string{"X-Webhook-Signature", "X-urBackend-Signature"} {
		if err := signing.VerifyHMACHex([]byte(secret), r.Body, r.Header.Get(h)); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if err := signing.VerifyStandard(secret, r.Header, r.Body, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("webhook-signature: %v", err)
	}
}

// TestFirstAttemptSignsWithBothKeysDuringARotation: the first attempt, made straight from ingest, reads the previous
// key through the same translation as the delivery controller (controller.KeysFor) and signs with both.
func TestFirstAttemptSignsWithBothKeysDuringARotation(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "rotating", rcv.URL+"/rotating", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, ""))
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	oldSecret := readySubscription(t, sub)

	newSecret, err := signing.GenerateSecret(signing.SchemeStandardWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: sub.Status.SigningSecretRef.Name}, s); err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"secret": []byte(newSecret), "secret.previous": []byte(oldSecret)}
	if err := cp.Client.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rotation in status", func() bool {
		keys := getSubscription(t, ns, "rotating").Status.SigningKeys
		return len(keys) == 2 && keys[1].Role == hookpostv1.SigningKeyPrevious
	})

	insert(t, table, row{"order.created", "7", "", `{"order_id":1}`})
	waitFor(t, "the first attempt", func() bool { return len(rcv.Requests("/rotating")) >= 1 })
	r := rcv.Requests("/rotating")[0]
	if err := signing.VerifyHMACHex([]byte(oldSecret), r.Body, r.Header.Get("X-Webhook-Signature")); err != nil {
		t.Errorf("X-Webhook-Signature with the old secret: %v", err)
	}
	if err := signing.VerifyHMACHex([]byte(newSecret), r.Body, r.Header.Get("X-Webhook-Signature-Next")); err != nil {
		t.Errorf("X-Webhook-Signature-Next with the new secret: %v", err)
	}
	for _, secret := range []string{oldSecret, newSecret} {
		if err := signing.VerifyStandard(secret, r.Header, r.Body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("webhook-signature with either secret: %v", err)
		}
	}
}

func TestFailedFirstAttemptBecomesADeliveryThatRetries(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/flaky", harness.Response{Status: 500}, harness.Response{Status: 200})
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "flaky", rcv.URL+"/flaky", fixtures.Events("*"), fixtures.InsecureHTTP(), fixtures.Schedule(time.Second))
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	readySubscription(t, sub)

	ids := insert(t, table, row{"order.created", "", "", `{"order_id":1}`})
	name := hookpostv1.DeliveryName("flaky", ids[0])
	var d *hookpostv1.WebhookDelivery
	waitFor(t, "the delivery Succeeded", func() bool {
		var ok bool
		d, ok = getDelivery(t, ns, name)
		return ok && d.Status.Phase == hookpostv1.DeliverySucceeded
	})
	if d.Status.Attempts != 2 || d.Status.History[0].StatusCode != 500 || d.Status.History[1].StatusCode != 200 {
		t.Fatalf("status = %d attempts, history %+v; want 500 then 200", d.Status.Attempts, d.Status.History)
	}
	reqs := rcv.Requests("/flaky")
	if len(reqs) != 2 || reqs[0].Header.Get(delivery.HeaderAttempt) != "1" || reqs[1].Header.Get(delivery.HeaderAttempt) != "2" {
		t.Fatalf("receiver got %d requests, want attempts 1 then 2", len(reqs))
	}
	if reqs[0].Header.Get(delivery.HeaderEventID) != ids[0] || reqs[1].Header.Get(delivery.HeaderEventID) != ids[0] {
		t.Errorf("X-Event-Id differs between attempts")
	}
	// The row's occurred_at has microseconds (now()); the retry is built from the object, which holds whole seconds.
	if !bytes.Equal(reqs[0].Body, reqs[1].Body) {
		t.Errorf("the retry's body differs from the first attempt's:\n%s\n%s", reqs[0].Body, reqs[1].Body)
	}
	if _, ok := reqs[1].Header["X-Hookpost-Test"]; ok {
		t.Errorf("the retry of a delivery ingest created (and sealed) was sent as a test event")
	}
	if pendingRows(t, table) != 0 {
		t.Errorf("the row is still pending after its delivery exists")
	}
}

// TestRejectedFirstAttemptFailsTheDelivery: a 404 (not retried) leaves a Failed delivery saying why, attempted
// once.
func TestRejectedFirstAttemptFailsTheDelivery(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/gone", harness.Response{Status: 404})
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "wrong-path", rcv.URL+"/gone", fixtures.Events("*"), fixtures.InsecureHTTP())
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	readySubscription(t, sub)

	ids := insert(t, table, row{"order.created", "", "", `{"order_id":1}`})
	var d *hookpostv1.WebhookDelivery
	waitFor(t, "the delivery Failed", func() bool {
		var ok bool
		d, ok = getDelivery(t, ns, hookpostv1.DeliveryName("wrong-path", ids[0]))
		return ok && d.Status.Phase == hookpostv1.DeliveryFailed
	})
	c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered)
	if c == nil || c.Reason != hookpostv1.ReasonRejected || d.Status.Attempts != 1 {
		t.Fatalf("condition = %+v, attempts %d; want Rejected after 1", c, d.Status.Attempts)
	}
	if n := len(rcv.Requests("/gone")); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestPausedSubscriptionHoldsWithoutAnAttempt: a paused subscription's match becomes a Pending delivery and
// nothing is sent until it resumes.
func TestPausedSubscriptionHoldsWithoutAnAttempt(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "paused", rcv.URL+"/p", fixtures.Events("*"), fixtures.InsecureHTTP(), fixtures.Paused())
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	subscribe(t, sub)

	ids := insert(t, table, row{"order.created", "", "", `{"order_id":1}`})
	name := hookpostv1.DeliveryName("paused", ids[0])
	waitFor(t, "a Pending delivery held by the pause", func() bool {
		d, ok := getDelivery(t, ns, name)
		if !ok {
			return false
		}
		c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered)
		return c != nil && c.Reason == hookpostv1.ReasonSubscriptionPaused
	})
	if n := len(rcv.Requests("")); n != 0 {
		t.Fatalf("a paused subscription's receiver got %d requests", n)
	}
	s := getSubscription(t, ns, "paused")
	before := s.DeepCopy()
	s.Spec.Paused = false
	// A merge patch of the spec alone: the controller writes status meanwhile.
	if err := cp.Client.Patch(context.Background(), s, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delivery Succeeded after resuming", func() bool {
		d, ok := getDelivery(t, ns, name)
		return ok && d.Status.Phase == hookpostv1.DeliverySucceeded
	})
	if n := len(rcv.Requests("/p")); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestBusyHostHandsTheMatchToTheDeliveryController: with the receiver's only slot held by a slow answer, matches
// that find no free slot within the host wait become Pending deliveries, not attempts, and the delivery controller
// sends them once the slot is free; every event arrives once.
func TestBusyHostHandsTheMatchToTheDeliveryController(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/slow", harness.Response{Status: 200, Delay: 3 * time.Second}, harness.Response{Status: 200})
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "slow", rcv.URL+"/slow", fixtures.Events("*"), fixtures.InsecureHTTP())
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour, maxPerHost: 1, hostWait: 50 * time.Millisecond}, src)
	readySubscription(t, sub)

	// Enough events that most are handed over while the slow attempt holds the slot.
	rows := make([]row, 100)
	for i := range rows {
		rows[i] = row{"order.created", "", "", fmt.Sprintf(`{"n":%d}`, i)}
	}
	ids := insert(t, table, rows...)
	waitFor(t, "every event received", func() bool { return len(rcv.Requests("/slow")) >= len(ids) })
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	held := 0
	waitFor(t, "the held deliveries Succeeded", func() bool {
		list := &hookpostv1.WebhookDeliveryList{}
		_ = cp.Client.List(context.Background(), list, client.InNamespace(ns))
		held = 0
		for _, d := range list.Items {
			if _, attempted := d.Annotations[hookpostv1.AnnotationFirstAttempt]; attempted {
				continue
			}
			if d.Status.Phase != hookpostv1.DeliverySucceeded || d.Status.Attempts != 1 {
				return false
			}
			held++
		}
		return held > 0
	})
	seen := map[string]int{}
	for _, r := range rcv.Requests("/slow") {
		seen[r.Header.Get(delivery.HeaderEventID)]++
		if _, ok := r.Header["X-Hookpost-Test"]; ok {
			t.Errorf("event %s, handed to the delivery controller, was sent as a test event", r.Header.Get(delivery.HeaderEventID))
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %s received %d times, want once", id, seen[id])
		}
	}
	t.Logf("%d of %d matches waited for the busy host as deliveries", held, len(ids))
}

// TestRefusedDeliveryAfterAFailedFirstAttemptIsInTheLedger: when the API server refuses for good the delivery
// that would carry a failed first attempt (here its namespace is being deleted), the event is not retried and
// the attempt is not lost: the ledger records it with outcome refused, and its outbox row is done.
func TestRefusedDeliveryAfterAFailedFirstAttemptIsInTheLedger(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/down", harness.Response{Status: 503})
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "down", rcv.URL+"/down", fixtures.Events("*"), fixtures.InsecureHTTP())
	src, table := newOutbox(t, postgres.Options{})
	w := newLedger(t, table)
	startOperator(t, operatorConfig{flushInterval: time.Hour, ledger: w}, src)
	readySubscription(t, sub)
	// Without a namespace controller the namespace stays Terminating, and the API server refuses new objects in it.
	if err := cp.Client.Delete(context.Background(), fixtures.Namespace(ns)); err != nil {
		t.Fatal(err)
	}

	ids := insert(t, table, row{"order.created", "", "", `{"order_id":1}`})
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	var (
		got []ledger.Attempt
		err error
	)
	waitFor(t, "the failed attempt in the ledger", func() bool {
		if err := w.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, err = w.Query(context.Background(), ledgerpg.Filter{Namespace: ns})
		return err == nil && len(got) > 0
	})
	if len(got) != 1 || got[0].EventID != ids[0] || got[0].Outcome != ledger.OutcomeRefused || got[0].StatusCode != 503 || got[0].Number != 1 {
		t.Fatalf("ledger = %+v, want attempt 1 of %s, 503, refused", got, ids[0])
	}
	if n := len(rcv.Requests("/down")); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestOpenCircuitHoldsFirstAttempts: once two failed first attempts open a subscription's circuit, its next events
// become Pending deliveries without an attempt (no retry budget spent), while another subscription of the same
// events gets every one.
func TestOpenCircuitHoldsFirstAttempts(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/down", harness.Response{Status: 503})
	ns := namespace(t)
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	readySubscription(t, fixtures.Subscription(ns, "down", rcv.URL+"/down", fixtures.Events("*"), fixtures.InsecureHTTP(),
		fixtures.Schedule(time.Hour), fixtures.CircuitBreaker(2, 10*time.Minute, 0)))
	readySubscription(t, fixtures.Subscription(ns, "healthy", rcv.URL+"/ok", fixtures.Events("*"), fixtures.InsecureHTTP()))

	first := insert(t, table, row{"order.created", "7", "", `{"n":1}`}, row{"order.created", "7", "", `{"n":2}`})
	waitFor(t, "two failed first attempts", func() bool { return len(rcv.Requests("/down")) == 2 })
	held := insert(t, table, row{"order.created", "7", "", `{"n":3}`}, row{"order.created", "7", "", `{"n":4}`}, row{"order.created", "7", "", `{"n":5}`})
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	waitFor(t, "the healthy subscription got all five", func() bool { return len(rcv.Requests("/ok")) == 5 })

	for _, id := range first {
		d, ok := getDelivery(t, ns, hookpostv1.DeliveryName("down", id))
		if !ok {
			t.Fatalf("no delivery for failed event %s", id)
		}
		waitFor(t, "the failed first attempt in status", func() bool {
			d, _ = getDelivery(t, ns, d.Name)
			return d.Status.Attempts == 1 && d.Status.Phase == hookpostv1.DeliveryRetrying
		})
	}
	for _, id := range held {
		d, ok := getDelivery(t, ns, hookpostv1.DeliveryName("down", id))
		if !ok {
			t.Fatalf("event %s held by the open circuit has no delivery: it would be lost", id)
		}
		if d.Status.Attempts != 0 || d.Annotations[hookpostv1.AnnotationFirstAttempt] != "" {
			t.Errorf("held delivery %s was attempted: attempts %d, first attempt %q", d.Name, d.Status.Attempts, d.Annotations[hookpostv1.AnnotationFirstAttempt])
		}
	}
	if n := len(rcv.Requests("/down")); n != 2 {
		t.Errorf("the failing endpoint got %d requests, want 2: the open circuit let attempts through", n)
	}
	waitFor(t, "CircuitOpen on the failing subscription", func() bool {
		return meta.IsStatusConditionTrue(getSubscription(t, ns, "down").Status.Conditions, hookpostv1.ConditionCircuitOpen)
	})
}
