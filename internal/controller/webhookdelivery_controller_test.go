package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/internal/signing"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

const testSecret = "shh-a-test-signing-secret"

var _ = Describe("WebhookDelivery controller", func() {
	ctx := context.Background()
	var (
		ns  string
		rcv *harness.Receiver
	)
	BeforeEach(func() {
		ns = newNamespace()
		rcv = newReceiver()
		Expect(k8sClient.Create(ctx, fixtures.SigningSecret(ns, "signing", map[string]string{"secret": testSecret}))).To(Succeed())
	})

	// subscribe creates a Ready subscription delivering to path on the spec's receiver.
	subscribe := func(name, path string, opts ...fixtures.SubscriptionOption) {
		opts = append([]fixtures.SubscriptionOption{fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")}, opts...)
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, name, rcv.URL+path, opts...))).To(Succeed())
		Eventually(readyOf(ns, name)).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
	}
	// deliver creates a delivery as ingest does, sealed (see handMade for one that is not).
	deliver := func(sub, eventID string, opts ...fixtures.DeliveryOption) string {
		d := fixtures.Delivery(ns, sub, eventID, "order.created", map[string]any{"order_id": 1001, "total": 299.99, "status": "pending"}, opts...)
		testSealer.Seal(d)
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		return d.Name
	}
	deliverEach := func(sub string, eventIDs ...string) []string {
		var names []string
		for _, id := range eventIDs {
			names = append(names, deliver(sub, id))
		}
		return names
	}
	lastError := func(name string) string { return getDelivery(ns, name)().Status.LastAttempt.Error }

	It("delivers a signed Envelope body on the first attempt, with the headers a doc-000 receiver reads", func() {
		subscribe("orders", "/ok")
		name := deliver("orders", "evt-1")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))

		reqs := rcv.Requests("/ok")
		Expect(reqs).To(HaveLen(1))
		r := reqs[0]
		Expect(string(r.Body)).To(Equal(`{"event":"order.created","tenant_id":123,"timestamp":"2025-11-16T10:30:00Z","data":{"order_id":1001,"status":"pending","total":299.99}}`))
		Expect(signing.VerifyHMACHex([]byte(testSecret), r.Body, r.Header.Get("X-Webhook-Signature"))).To(Succeed())
		Expect(r.Header.Get("X-Event-Id")).To(Equal("evt-1"))
		Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
		Expect(r.Header.Get("User-Agent")).To(Equal("Hookpost/test"))
		Expect(r.Header.Get("X-Hookpost-Delivery")).To(Equal(name))
		Expect(r.Header.Get("X-Hookpost-Attempt")).To(Equal("1"))

		d := getDelivery(ns, name)()
		Expect(d.Status.Attempts).To(BeEquivalentTo(1))
		Expect(d.Status.LastAttempt.StatusCode).To(BeEquivalentTo(200))
		Expect(d.Status.LastAttempt.ResponseBody).To(Equal(`{"received":true}`))
		Expect(d.Status.CompletionTime).NotTo(BeNil())
		Expect(d.Status.NextAttemptTime).To(BeNil())
		Expect(meta.IsStatusConditionTrue(d.Status.Conditions, hookpostv1.ConditionDelivered)).To(BeTrue())
		Eventually(func() int64 { return getSubscription(ns, "orders")().Status.Delivered }).WithTimeout(summaryWait).Should(BeEquivalentTo(1))
	})

	It("delivers to an HTTPS receiver whose certificate it verifies", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "tls", tlsReceiver.URL+"/tls-"+ns, fixtures.SecretRef("signing", "secret")))).To(Succeed())
		name := deliver("tls", "evt-tls")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		Expect(tlsReceiver.Requests("/tls-" + ns)).To(HaveLen(1))
	})

	It("retries a receiver that fails twice at exactly 1m and 5m on the clock, then succeeds", func() {
		rcv.Script("/flaky", harness.Response{Status: 500}, harness.Response{Status: 503}, harness.Response{Status: 200})
		subscribe("flaky", "/flaky")
		start := fakeClock.Now()
		name := deliver("flaky", "evt-flaky")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryRetrying))
		d := getDelivery(ns, name)()
		Expect(d.Status.NextAttemptTime.Time).To(BeTemporally("==", start.Add(time.Minute)))
		Expect(d.Status.LastAttempt.StatusCode).To(BeEquivalentTo(500))

		By("not attempting before the retry is due")
		stepAndPoke(ns, name, 59*time.Second)
		Consistently(attemptsOf(ns, name), "300ms").Should(BeEquivalentTo(1))

		stepAndPoke(ns, name, time.Second)
		Eventually(attemptsOf(ns, name)).Should(BeEquivalentTo(2))
		Expect(getDelivery(ns, name)().Status.NextAttemptTime.Time).To(BeTemporally("==", start.Add(6*time.Minute)))

		stepAndPoke(ns, name, 5*time.Minute)
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		d = getDelivery(ns, name)()
		Expect(d.Status.History).To(HaveLen(3))
		Expect(d.Status.History[0].Time.Time).To(BeTemporally("==", start))
		Expect(d.Status.History[1].Time.Time).To(BeTemporally("==", start.Add(time.Minute)))
		Expect(d.Status.History[2].Time.Time).To(BeTemporally("==", start.Add(6*time.Minute)))

		reqs := rcv.Requests("/flaky")
		Expect(reqs).To(HaveLen(3))
		for _, r := range reqs {
			Expect(r.Header.Get("X-Event-Id")).To(Equal("evt-flaky"), "the idempotency key is stable across retries")
			Expect(r.Body).To(Equal(reqs[0].Body), "the body is identical on every retry")
		}
	})

	It("fails after the whole default schedule (1m, 5m, 15m, 1h, 6h) and emits an Event", func() {
		rcv.Script("/down", harness.Response{Status: 502})
		subscribe("down", "/down")
		name := deliver("down", "evt-down")
		Eventually(attemptsOf(ns, name)).Should(BeEquivalentTo(1))
		for i, wait := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour} {
			stepAndPoke(ns, name, wait)
			Eventually(attemptsOf(ns, name)).Should(BeEquivalentTo(i + 2))
		}
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryFailed))
		c := meta.FindStatusCondition(getDelivery(ns, name)().Status.Conditions, hookpostv1.ConditionDelivered)
		Expect(c.Reason).To(Equal(hookpostv1.ReasonRetriesExhausted))
		Expect(c.Message).To(ContainSubstring("all 6 attempts failed"))
		Eventually(eventReasons(ns)).Should(ContainElement(hookpostv1.ReasonRetriesExhausted))
		Eventually(func() int64 { return getSubscription(ns, "down")().Status.Failed }).WithTimeout(summaryWait).Should(BeEquivalentTo(1))
		Expect(getSubscription(ns, "down")().Status.ConsecutiveFailures).To(BeEquivalentTo(6))
	})

	It("records the failure Event with its note cut to the events API's 1 KiB when the message is longer", func() {
		// A hostname of 1,500 characters cannot resolve, and the condition message quotes it whole.
		host := strings.Repeat("x", 1500) + ".invalid"
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "longhost", "http://"+host+"/hook",
			fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret"), fixtures.Schedule(time.Second)))).To(Succeed())
		Eventually(readyOf(ns, "longhost")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
		name := deliver("longhost", "evt-longhost")
		Eventually(attemptsOf(ns, name)).Should(BeEquivalentTo(1))
		stepAndPoke(ns, name, time.Second)
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryFailed))
		c := meta.FindStatusCondition(getDelivery(ns, name)().Status.Conditions, hookpostv1.ConditionDelivered)
		Expect(len(c.Message)).To(BeNumerically(">", maxEventNote), "the message must be too long for a note, or this proves nothing")

		var note string
		Eventually(func() string {
			list := &corev1.EventList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			for _, e := range list.Items {
				if e.InvolvedObject.Name == name && e.Reason == hookpostv1.ReasonRetriesExhausted {
					note = e.Message
				}
			}
			return note
		}).ShouldNot(BeEmpty(), "the Event exists: the API accepted its note")
		Expect(len(note)).To(BeNumerically("<=", maxEventNote))
		Expect(note).To(HavePrefix("all 2 attempts failed; last: DNS: no such host xxxx"))
		Expect(note).To(HaveSuffix(truncatedMarker))
	})

	It("fails a 4xx for good, but retries it with retryOn4xx (doc 002)", func() {
		rcv.Script("/bad", harness.Response{Status: 400, Body: "bad request"})
		subscribe("strict", "/bad")
		subscribe("lenient", "/bad", fixtures.RetryOn4xx())
		strict := deliver("strict", "evt-4xx")
		lenient := deliver("lenient", "evt-4xx")
		Eventually(phaseOf(ns, strict)).Should(Equal(hookpostv1.DeliveryFailed))
		Expect(meta.FindStatusCondition(getDelivery(ns, strict)().Status.Conditions, hookpostv1.ConditionDelivered).Reason).To(Equal(hookpostv1.ReasonRejected))
		Expect(getDelivery(ns, strict)().Status.LastAttempt.ResponseBody).To(Equal("bad request"))
		Eventually(phaseOf(ns, lenient)).Should(Equal(hookpostv1.DeliveryRetrying))
	})

	It("stops on 410 Gone and says so", func() {
		rcv.Script("/gone", harness.Response{Status: 410})
		subscribe("gone", "/gone", fixtures.RetryOn4xx())
		name := deliver("gone", "evt-gone")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryFailed))
		c := meta.FindStatusCondition(getDelivery(ns, name)().Status.Conditions, hookpostv1.ConditionDelivered)
		Expect(c.Reason).To(Equal(hookpostv1.ReasonGone))
		Expect(c.Message).To(ContainSubstring("410 Gone"))
	})

	It("honours Retry-After on a 429 when it is longer than the schedule's delay", func() {
		rcv.Script("/busy", harness.Response{Status: 429, Header: map[string]string{"Retry-After": "600"}})
		subscribe("busy", "/busy")
		start := fakeClock.Now()
		name := deliver("busy", "evt-busy")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryRetrying))
		Expect(getDelivery(ns, name)().Status.NextAttemptTime.Time).To(BeTemporally("==", start.Add(10*time.Minute)))
	})

	It("counts a redirect as a failed attempt and does not follow it", func() {
		rcv.Script("/moved", harness.Response{Status: 302, Header: map[string]string{"Location": rcv.URL + "/ok"}})
		subscribe("moved", "/moved")
		name := deliver("moved", "evt-moved")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryRetrying))
		Expect(getDelivery(ns, name)().Status.LastAttempt.StatusCode).To(BeEquivalentTo(302))
		Expect(lastError(name)).To(ContainSubstring("not followed"))
		Expect(rcv.Requests("/ok")).To(BeEmpty())
	})

	It("records a timeout and retries", func() {
		rcv.Script("/slow", harness.Response{Status: 200, Delay: 5 * time.Second})
		subscribe("slow", "/slow", fixtures.Timeout(time.Second))
		name := deliver("slow", "evt-slow")
		Eventually(phaseOf(ns, name), "10s").Should(Equal(hookpostv1.DeliveryRetrying))
		Expect(lastError(name)).To(ContainSubstring("timeout"))
	})

	It("reaches an internal destination only from the namespace a cluster admin allowed it, withholding its answers there unless shown", func() {
		internal, err := harness.NewReceiverOn("127.0.0.2")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(internal.Close)
		internal.Script("/hook", harness.Response{Status: 200, Body: "internal build 7f3c, db=primary"})

		allowed := newNamespaceWith(map[string]string{hookpostv1.AnnotationTenants: "*", hookpostv1.AnnotationAllowCIDRs: "10.0.0.0/8, 127.0.0.2, nonsense"})
		Expect(k8sClient.Create(ctx, fixtures.SigningSecret(allowed, "signing", map[string]string{"secret": testSecret}))).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.Subscription(allowed, "internal", internal.URL+"/hook", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")))).To(Succeed())
		d := fixtures.Delivery(allowed, "internal", "evt-internal", "order.created", map[string]any{"order_id": 1})
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		Eventually(phaseOf(allowed, d.Name)).Should(Equal(hookpostv1.DeliverySucceeded))
		body := getDelivery(allowed, d.Name)().Status.LastAttempt.ResponseBody
		Expect(body).NotTo(ContainSubstring("db=primary"), "an internal service's answer stays out of status")
		Expect(body).To(ContainSubstring(hookpostv1.AnnotationShowInternalResponses + "=true"))

		// Another namespace (this spec's, which shows internal answers but is allowed no range) is still refused.
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "internal", internal.URL+"/hook", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")))).To(Succeed())
		name := deliver("internal", "evt-other-namespace")
		Eventually(func() *hookpostv1.AttemptRecord { return getDelivery(ns, name)().Status.LastAttempt }).ShouldNot(BeNil())
		Expect(lastError(name)).To(ContainSubstring(hookpostv1.AnnotationAllowCIDRs + "=127.0.0.0/8"))
		Expect(internal.Requests("/hook")).To(HaveLen(1), "only the allowed namespace's delivery reached the internal receiver")
	})

	It("names an allow-cidrs entry it could not read in the refusal", func() {
		bad := newNamespaceWith(map[string]string{hookpostv1.AnnotationTenants: "*", hookpostv1.AnnotationAllowCIDRs: "127.0.0.2/33"})
		Expect(k8sClient.Create(ctx, fixtures.SigningSecret(bad, "signing", map[string]string{"secret": testSecret}))).To(Succeed())
		url := strings.Replace(rcv.URL, "127.0.0.1", "127.0.0.2", 1)
		Expect(k8sClient.Create(ctx, fixtures.Subscription(bad, "typo", url+"/x", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")))).To(Succeed())
		d := fixtures.Delivery(bad, "typo", "evt-typo", "order.created", map[string]any{"order_id": 1})
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		Eventually(func() *hookpostv1.AttemptRecord { return getDelivery(bad, d.Name)().Status.LastAttempt }).ShouldNot(BeNil())
		Expect(getDelivery(bad, d.Name)().Status.LastAttempt.Error).To(ContainSubstring(`entries "127.0.0.2/33" are not CIDR ranges or addresses and were ignored`))
	})

	It("refuses a loopback destination the operator was not started with --allow-cidr for", func() {
		url := strings.Replace(rcv.URL, "127.0.0.1", "127.0.0.2", 1)
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "ssrf", url+"/x", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")))).To(Succeed())
		name := deliver("ssrf", "evt-ssrf")
		Eventually(func() *hookpostv1.AttemptRecord { return getDelivery(ns, name)().Status.LastAttempt }).ShouldNot(BeNil())
		Expect(lastError(name)).To(And(ContainSubstring("127.0.0.2"), ContainSubstring("127.0.0.0/8"), ContainSubstring("--allow-cidr")))
		Expect(rcv.Requests("")).To(BeEmpty(), "nothing reached the receiver")
	})

	It("holds deliveries Pending while the subscription is paused and drains them on resume", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "pausable", rcv.URL+"/pausable", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret"), fixtures.Paused()))).To(Succeed())
		Eventually(readyOf(ns, "pausable")).Should(And(Not(BeNil()), HaveField("Reason", hookpostv1.ReasonPaused)))
		var names []string
		for _, id := range []string{"p1", "p2", "p3"} {
			names = append(names, deliver("pausable", id))
		}
		for _, n := range names {
			Eventually(func() string {
				c := meta.FindStatusCondition(getDelivery(ns, n)().Status.Conditions, hookpostv1.ConditionDelivered)
				if c == nil {
					return ""
				}
				return c.Reason
			}).Should(Equal(hookpostv1.ReasonSubscriptionPaused))
			Expect(phaseOf(ns, n)()).To(Equal(hookpostv1.DeliveryPending))
		}
		Consistently(requestsTo(rcv, "/pausable"), "300ms").Should(BeZero())

		sub := getSubscription(ns, "pausable")()
		patch := client.MergeFrom(sub.DeepCopy())
		sub.Spec.Paused = false
		Expect(k8sClient.Patch(ctx, sub, patch)).To(Succeed())
		for _, n := range names {
			Eventually(phaseOf(ns, n)).Should(Equal(hookpostv1.DeliverySucceeded))
		}
		Expect(rcv.Requests("/pausable")).To(HaveLen(3))
	})

	It("waits with a clear condition while its subscription does not exist", func() {
		name := deliver("later", "evt-later")
		Eventually(func() string {
			c := meta.FindStatusCondition(getDelivery(ns, name)().Status.Conditions, hookpostv1.ConditionDelivered)
			if c == nil {
				return ""
			}
			return c.Reason
		}).Should(Equal(hookpostv1.ReasonSubscriptionNotFound))
		subscribe("later", "/later")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
	})

	It("sends a delivery again when the replay annotation changes, keeping its history", func() {
		subscribe("replay", "/replay")
		name := deliver("replay", "evt-replay")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		for i, value := range []string{"first", "second"} {
			fakeClock.Step(replayInterval) // at most one replay per delivery per interval
			d := getDelivery(ns, name)()
			patch := client.MergeFrom(d.DeepCopy())
			d.Annotations = map[string]string{hookpostv1.AnnotationReplay: value}
			Expect(k8sClient.Patch(ctx, d, patch)).To(Succeed())
			Eventually(attemptsOf(ns, name)).Should(BeEquivalentTo(i + 2))
			Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		}
		Consistently(requestsTo(rcv, "/replay"), "300ms").Should(Equal(3), "each replay value sends once")
		Expect(getDelivery(ns, name)().Status.History).To(HaveLen(3))
		Expect(rcv.Requests("/replay")[2].Header.Get("X-Hookpost-Attempt")).To(Equal("3"))
	})

	// replayAs patches the delivery's replay annotation to value, as kubectl annotate --overwrite does.
	replayAs := func(name, value string) {
		d := getDelivery(ns, name)()
		patch := client.MergeFrom(d.DeepCopy())
		d.Annotations[hookpostv1.AnnotationReplay] = value
		Expect(k8sClient.Patch(ctx, d, patch)).To(Succeed())
	}
	replayDeferred := func(name string) func() *metav1.Condition {
		return func() *metav1.Condition {
			return meta.FindStatusCondition(getDelivery(ns, name)().Status.Conditions, hookpostv1.ConditionReplayDeferred)
		}
	}

	It("sends 20 replays asked for within moments as one replay now and one more once the interval has passed", func() {
		subscribe("flood", "/flood")
		name := deliver("flood", "evt-flood")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		fakeClock.Step(replayInterval) // the suite's earlier replays of other deliveries do not count; be sure
		for i := range 20 {
			replayAs(name, fmt.Sprintf("flood-%d", i))
		}
		Eventually(requestsTo(rcv, "/flood")).Should(Equal(2), "the first request is replayed at once")
		Eventually(replayDeferred(name)).Should(And(Not(BeNil()), HaveField("Reason", hookpostv1.ReasonReplayRateLimited),
			HaveField("Message", ContainSubstring("deferred until"))))
		Consistently(requestsTo(rcv, "/flood"), "1s").Should(Equal(2), "the rest wait for the interval")
		Expect(getDelivery(ns, name)().Annotations[hookpostv1.AnnotationReplayed]).NotTo(Equal("flood-19"))

		stepAndPoke(ns, name, replayInterval)
		Eventually(requestsTo(rcv, "/flood")).Should(Equal(3), "the requests made meanwhile are merged into one replay")
		Eventually(func() string { return getDelivery(ns, name)().Annotations[hookpostv1.AnnotationReplayed] }).Should(Equal("flood-19"))
		Eventually(replayDeferred(name)).Should(BeNil())
		stepAndPoke(ns, name, replayInterval)
		Consistently(requestsTo(rcv, "/flood"), "1s").Should(Equal(3), "nothing is left to replay")
		Expect(getDelivery(ns, name)().Status.Attempts).To(BeEquivalentTo(3))
		Eventually(eventReasons(ns)).Should(ContainElement(hookpostv1.ReasonReplayRateLimited))
	})

	It("defers, not drops, a replay beyond its subscription's replay budget", func() {
		subscribe("budget", "/budget")
		var names []string
		for i := range 4 { // the suite's burst is 3
			n := deliver("budget", fmt.Sprintf("evt-budget-%d", i))
			Eventually(phaseOf(ns, n)).Should(Equal(hookpostv1.DeliverySucceeded))
			names = append(names, n)
		}
		fakeClock.Step(time.Minute) // a full bucket
		for _, n := range names {
			replayAs(n, "again")
		}
		Eventually(requestsTo(rcv, "/budget")).Should(Equal(4 + 3))
		deferred := ""
		Eventually(func() []string {
			var waiting []string
			for _, n := range names {
				if c := replayDeferred(n)(); c != nil {
					waiting = append(waiting, n)
				}
			}
			if len(waiting) == 1 {
				deferred = waiting[0]
			}
			return waiting
		}).Should(HaveLen(1))
		Expect(replayDeferred(deferred)().Message).To(ContainSubstring("per minute per subscription"))
		Consistently(requestsTo(rcv, "/budget"), "1s").Should(Equal(7))

		stepAndPoke(ns, deferred, 10*time.Second) // 6 a minute: a token every 10s
		Eventually(requestsTo(rcv, "/budget")).Should(Equal(8))
		Eventually(attemptsOf(ns, deferred)).Should(BeEquivalentTo(2))
		Eventually(replayDeferred(deferred)).Should(BeNil())
	})

	It("keeps a replay asked for while the destination host is busy, and sends it when a slot frees", func() {
		subscribe("replay-busy", "/replay-busy")
		name := deliver("replay-busy", "evt-replay-busy")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))

		By("filling every slot of the receiver's host with slow attempts")
		rcv.Script("/hold", harness.Response{Status: 200, Delay: 3 * time.Second})
		subscribe("hold", "/hold")
		for i := range 4 { // the suite's MaxPerHost
			deliver("hold", fmt.Sprintf("evt-hold-%d", i))
		}
		Eventually(requestsTo(rcv, "/hold")).Should(Equal(4))

		d := getDelivery(ns, name)()
		patch := client.MergeFrom(d.DeepCopy())
		d.Annotations = map[string]string{hookpostv1.AnnotationReplay: "while-busy"}
		Expect(k8sClient.Patch(ctx, d, patch)).To(Succeed())
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryPending), "the replay is recorded at once")
		By("merging a replay asked for while the accepted one waits for its attempt")
		replayAs(name, "while-busy-again")
		Eventually(func() string { return getDelivery(ns, name)().Annotations[hookpostv1.AnnotationReplayed] }).Should(Equal("while-busy-again"))
		Expect(replayDeferred(name)()).To(BeNil(), "a merged replay waits for nothing")
		Expect(attemptsOf(ns, name)()).To(BeEquivalentTo(1), "the slow attempts still hold every slot")
		Eventually(attemptsOf(ns, name), "10s").Should(BeEquivalentTo(2))
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		Consistently(requestsTo(rcv, "/replay-busy"), "1s").Should(Equal(2), "two replay values, one replay")
	})

	It("sends a real event the operator sealed without X-Hookpost-Test", func() {
		subscribe("sealed", "/sealed")
		// Sealed as ingest seals: raw bytes and a time the API server gives back in another form.
		name := deliver("sealed", "evt-sealed", fixtures.Tenant("42"), func(d *hookpostv1.WebhookDelivery) {
			d.Spec.Data.Raw = []byte(`{ "total": 299.99, "order_id": 1001 }`)
			d.Spec.Event.OccurredAt = metav1.NewTime(time.Date(2025, 11, 16, 10, 30, 0, 123456789, time.UTC))
		})
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		r := rcv.Requests("/sealed")[0]
		Expect(r.Header).NotTo(HaveKey("X-Hookpost-Test"))
		Expect(signing.VerifyHMACHex([]byte(testSecret), r.Body, r.Header.Get("X-Webhook-Signature"))).To(Succeed())
	})

	It("sends a hand-made delivery of a real event (no seal, or a seal of other fields) as a test event, with a Warning saying why", func() {
		subscribe("forged", "/forged")
		unsealed := fixtures.Delivery(ns, "forged", "evt-unsealed", "order.paid", map[string]any{"order_id": 7}, fixtures.Tenant("42"))
		Expect(k8sClient.Create(ctx, unsealed)).To(Succeed())
		// A seal copied from a delivery the operator made does not cover another tenant.
		copied := fixtures.Delivery(ns, "forged", "evt-copied", "order.paid", map[string]any{"order_id": 7}, fixtures.Tenant("42"))
		testSealer.Seal(copied)
		copied.Spec.Event.TenantID = "43"
		Expect(k8sClient.Create(ctx, copied)).To(Succeed())
		for _, name := range []string{unsealed.Name, copied.Name} {
			Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		}
		reqs := rcv.Requests("/forged")
		Expect(reqs).To(HaveLen(2))
		for _, r := range reqs {
			Expect(r.Header.Get("X-Hookpost-Test")).To(Equal("true"), "delivery %s", r.Header.Get("X-Hookpost-Delivery"))
		}
		Eventually(func() []string {
			list := &corev1.EventList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			var notes []string
			for _, e := range list.Items {
				if e.Reason == hookpostv1.ReasonNotSealed && e.Type == corev1.EventTypeWarning {
					notes = append(notes, e.InvolvedObject.Name+": "+e.Message)
				}
			}
			return notes
		}).Should(ConsistOf(
			And(HavePrefix(unsealed.Name+":"), ContainSubstring("sent as a test event")),
			And(HavePrefix(copied.Name+":"), ContainSubstring("sent as a test event")),
		))
	})

	It("marks a test event in its headers", func() {
		subscribe("testing", "/test")
		name := deliver("testing", "evt-test", fixtures.Test())
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		Expect(rcv.Requests("/test")[0].Header.Get("X-Hookpost-Test")).To(Equal("true"))
	})

	It("sends Collection bodies with the doc-002 signature header and StandardWebhooks signatures", func() {
		subscribe("collection", "/collection", fixtures.Format(hookpostv1.PayloadFormatCollection), fixtures.SignatureHeader("X-urBackend-Signature"))
		name := deliver("collection", "evt-col", fixtures.Collection("posts"))
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		r := rcv.Requests("/collection")[0]
		var body map[string]json.RawMessage
		Expect(json.Unmarshal(r.Body, &body)).To(Succeed())
		Expect(body).To(HaveKey("payload"))
		Expect(string(body["collection"])).To(Equal(`"posts"`))
		Expect(signing.VerifyHMACHex([]byte(testSecret), r.Body, r.Header.Get("X-urBackend-Signature"))).To(Succeed())

		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "std", rcv.URL+"/std", fixtures.InsecureHTTP(), fixtures.Scheme(hookpostv1.SigningSchemeStandardWebhooks)))).To(Succeed())
		Eventually(readyOf(ns, "std")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
		std := deliver("std", "evt-std")
		Eventually(phaseOf(ns, std)).Should(Equal(hookpostv1.DeliverySucceeded))
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "std-signing-secret"}, s)).To(Succeed())
		sr := rcv.Requests("/std")[0]
		Expect(sr.Header.Get("webhook-id")).To(Equal("evt-std"))
		Expect(signing.VerifyStandard(string(s.Data["secret"]), sr.Header, sr.Body, time.Now(), 24*365*time.Hour*10)).To(Succeed())
	})

	It("sends hex HMAC and StandardWebhooks signatures on one request, keyed with one generated secret", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "migrating", rcv.URL+"/migrating", fixtures.InsecureHTTP(),
			fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, ""),
			fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, "X-urBackend-Signature")))).To(Succeed())
		Eventually(readyOf(ns, "migrating")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
		name := deliver("migrating", "evt-both")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "migrating-signing-secret"}, s)).To(Succeed())
		secret := string(s.Data["secret"])

		r := rcv.Requests("/migrating")[0]
		// What a receiver following docs/receivers.md does with WEBHOOK_SECRET set to this one string.
		Expect(signing.VerifyHMACHex([]byte(secret), r.Body, r.Header.Get("X-Webhook-Signature"))).To(Succeed())
		Expect(signing.VerifyHMACHex([]byte(secret), r.Body, r.Header.Get("X-urBackend-Signature"))).To(Succeed())
		wh, err := standardwebhooks.NewWebhook(secret)
		Expect(err).NotTo(HaveOccurred())
		Expect(wh.VerifyIgnoringTimestamp(r.Body, r.Header)).To(Succeed(), "the fake clock signs webhook-timestamp")
		Expect(r.Header.Get("webhook-id")).To(Equal("evt-both"))
	})

	It("rotates a generated secret: both keys sign for the overlap, the old one expires by itself, and every receiver keeps verifying", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "rotating", rcv.URL+"/rotating", fixtures.InsecureHTTP(),
			fixtures.RotationOverlap(time.Hour),
			fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, ""),
			fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, "X-urBackend-Signature")))).To(Succeed())
		Eventually(readyOf(ns, "rotating")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
		secretKey := client.ObjectKey{Namespace: ns, Name: "rotating-signing-secret"}
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, secretKey, s)).To(Succeed())
		oldSecret := string(s.Data["secret"])

		// rotationEvents events per phase (1,002 in all, the 1,000 spread across a rotation), created as ingest
		// creates deliveries, each with its own body.
		const rotationEvents = 334
		sendPhase := func(phase string) []harness.Received {
			for i := range rotationEvents {
				d := fixtures.Delivery(ns, "rotating", fmt.Sprintf("%s-%d", phase, i), "order.created", map[string]any{"order_id": i, "phase": phase})
				testSealer.Seal(d)
				Expect(k8sClient.Create(ctx, d)).To(Succeed())
			}
			// Succeeded deliveries beyond the history limit are pruned: count what the receiver got instead.
			received := func() []harness.Received {
				var got []harness.Received
				for _, r := range rcv.Requests("/rotating") {
					if strings.HasPrefix(r.Header.Get("X-Event-Id"), phase+"-") {
						got = append(got, r)
					}
				}
				return got
			}
			Eventually(received).WithTimeout(time.Minute).Should(HaveLen(rotationEvents))
			return received()
		}
		// docChecks are the requests as a doc-000 receiver (X-Webhook-Signature, or header000) and a doc-002 receiver
		// (X-urBackend-Signature, or its -Next) configured with secret check them.
		docChecks := func(reqs []harness.Received, secret, suffix string) []harness.DocCheck {
			var checks []harness.DocCheck
			for _, r := range reqs {
				checks = append(checks, harness.DocCheck{Body: string(r.Body), Secret: secret,
					Signature000: r.Header.Get("X-Webhook-Signature" + suffix), Signature002: r.Header.Get("X-urBackend-Signature" + suffix)})
			}
			return checks
		}
		expectAccepted := func(checks []harness.DocCheck, what string) {
			verdicts, err := harness.ProductDocVerdicts(checks)
			Expect(err).NotTo(HaveOccurred())
			for i, v := range verdicts {
				Expect(v).To(Equal([2]bool{true, true}), "%s: request %d", what, i)
			}
		}
		expectStandard := func(reqs []harness.Received, secret string) {
			wh, err := standardwebhooks.NewWebhook(secret)
			Expect(err).NotTo(HaveOccurred())
			for _, r := range reqs {
				Expect(wh.VerifyIgnoringTimestamp(r.Body, r.Header)).To(Succeed(), "the fake clock signs webhook-timestamp")
			}
		}

		before := sendPhase("before")
		expectAccepted(docChecks(before, oldSecret, ""), "before the rotation, receivers on the old secret")
		expectStandard(before, oldSecret)

		// What `kubectl hookpost secret rotate` writes: a new value, the old one under secret.previous, in one update.
		newSecret, err := signing.GenerateSecret(signing.SchemeStandardWebhooks)
		Expect(err).NotTo(HaveOccurred())
		s.Data = map[string][]byte{"secret": []byte(newSecret), "secret.previous": []byte(oldSecret)}
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		rotatedAt := fakeClock.Now()
		Eventually(signingKeysOf(ns, "rotating")).WithTimeout(30 * time.Second).Should(ConsistOf(
			hookpostv1.SigningKey{ID: signing.Fingerprint(newSecret), Role: hookpostv1.SigningKeyCurrent},
			And(HaveField("ID", signing.Fingerprint(oldSecret)), HaveField("Role", hookpostv1.SigningKeyPrevious),
				HaveField("ExpiresAt.Time", BeTemporally("~", rotatedAt.Add(time.Hour), time.Second)))))
		Eventually(eventReasons(ns)).WithTimeout(30 * time.Second).Should(ContainElement(hookpostv1.ReasonRotationStarted))

		during := sendPhase("during")
		expectAccepted(docChecks(during, oldSecret, ""), "during the overlap, untouched receivers on the old secret (primary headers)")
		expectAccepted(docChecks(during, newSecret, signing.NextHeaderSuffix), "during the overlap, receivers on the new secret (-Next headers)")
		expectStandard(during, oldSecret)
		expectStandard(during, newSecret)
		Expect(strings.Fields(during[0].Header.Get("webhook-signature"))).To(HaveLen(2))

		fakeClock.Step(time.Hour)
		pokeSubscription(ns, "rotating")
		Eventually(signingKeysOf(ns, "rotating")).WithTimeout(30 * time.Second).Should(Equal(
			[]hookpostv1.SigningKey{{ID: signing.Fingerprint(newSecret), Role: hookpostv1.SigningKeyCurrent}}))
		Eventually(eventReasons(ns)).WithTimeout(30 * time.Second).Should(ContainElement(hookpostv1.ReasonRotationFinished))
		Eventually(func() map[string][]byte {
			Expect(k8sClient.Get(ctx, secretKey, s)).To(Succeed())
			return s.Data
		}).WithTimeout(30*time.Second).Should(Equal(map[string][]byte{"secret": []byte(newSecret)}), "Hookpost removes the expired key from the Secret it owns")

		after := sendPhase("after")
		expectAccepted(docChecks(after, newSecret, ""), "after the overlap, receivers switched to the new secret")
		expectStandard(after, newSecret)
		Expect(after[0].Header.Get("X-Webhook-Signature-Next")).To(BeEmpty())
		Expect(strings.Fields(after[0].Header.Get("webhook-signature"))).To(HaveLen(1))
	})

	It("expires the previous key of a Secret the user owns without editing the Secret", func() {
		subscribe("owned", "/owned", fixtures.RotationOverlap(time.Minute))
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "signing"}, s)).To(Succeed())
		s.Data = map[string][]byte{"secret": []byte("the-new-secret"), "secret.previous": []byte(testSecret)}
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		previous := And(HaveField("ID", signing.Fingerprint(testSecret)), HaveField("Role", hookpostv1.SigningKeyPrevious))
		Eventually(signingKeysOf(ns, "owned")).WithTimeout(30 * time.Second).Should(ContainElement(previous))

		during := deliver("owned", "evt-during")
		Eventually(phaseOf(ns, during)).WithTimeout(30 * time.Second).Should(Equal(hookpostv1.DeliverySucceeded))
		r := rcv.Requests("/owned")[0]
		Expect(signing.VerifyHMACHex([]byte(testSecret), r.Body, r.Header.Get("X-Webhook-Signature"))).To(Succeed())
		Expect(signing.VerifyHMACHex([]byte("the-new-secret"), r.Body, r.Header.Get("X-Webhook-Signature-Next"))).To(Succeed())

		fakeClock.Step(time.Minute)
		pokeSubscription(ns, "owned")
		Eventually(signingKeysOf(ns, "owned")).WithTimeout(30 * time.Second).Should(ContainElement(
			And(HaveField("ID", signing.Fingerprint(testSecret)), HaveField("Role", hookpostv1.SigningKeyExpired))))
		Eventually(eventReasons(ns)).WithTimeout(30 * time.Second).Should(ContainElement(hookpostv1.ReasonRotationFinished))
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "signing"}, s)).To(Succeed())
		Expect(s.Data).To(HaveKey("secret.previous"), "a Secret the user owns is left as applied")

		after := deliver("owned", "evt-after")
		Eventually(phaseOf(ns, after)).WithTimeout(30 * time.Second).Should(Equal(hookpostv1.DeliverySucceeded))
		r = rcv.Requests("/owned")[1]
		Expect(signing.VerifyHMACHex([]byte("the-new-secret"), r.Body, r.Header.Get("X-Webhook-Signature"))).To(Succeed())
		Expect(r.Header.Get("X-Webhook-Signature-Next")).To(BeEmpty())
	})

	It("deletes the oldest finished deliveries beyond the history limits and keeps counting them", func() {
		subscribe("bounded", "/bounded", fixtures.HistoryLimits(2, 1))
		var names []string
		for _, id := range []string{"h1", "h2", "h3", "h4"} {
			n := deliver("bounded", id)
			Eventually(phaseOf(ns, n)).Should(Equal(hookpostv1.DeliverySucceeded))
			names = append(names, n)
			fakeClock.Step(time.Second) // completion times strictly ordered
		}
		Eventually(func() []string {
			list := &hookpostv1.WebhookDeliveryList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			var left []string
			for _, d := range list.Items {
				left = append(left, d.Name)
			}
			return left
		}).Should(ConsistOf(names[2], names[3]))
		Eventually(func() int64 { return getSubscription(ns, "bounded")().Status.Delivered }).WithTimeout(summaryWait).Should(BeEquivalentTo(4))
	})
	// What a user sees of a delivery through the real kubectl (the one envtest's binaries were built with) and
	// the real plugin binary, against the suite's API server and ledger (helpers in kubectl_test.go).
	It("prints a future next retry as its time in kubectl get, not <invalid>", func() {
		rcv.Script("/next", harness.Response{Status: 503})
		subscribe("next", "/next", fixtures.Schedule(time.Hour))
		name := deliver("next", "evt-next")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryRetrying))
		next := getDelivery(ns, name)().Status.NextAttemptTime
		Expect(next).NotTo(BeNil())
		// The fake clock is years ahead of the real one, so the next retry is in the future as kubectl sees it:
		// a date column would print <invalid>.
		Expect(next.Time).To(BeTemporally(">", time.Now()))

		out := kubectl("get", "webhookdeliveries", "-n", ns)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(lines).To(HaveLen(2), out)
		Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "SUBSCRIPTION", "EVENT", "PHASE", "ATTEMPTS", "CODE", "NEXT", "RETRY", "AGE"}))
		Expect(strings.Fields(lines[1])[:7]).To(Equal([]string{name, "next", "order.created", "Retrying", "1", "503", next.UTC().Format(time.RFC3339)}))
		Expect(out).NotTo(ContainSubstring("<invalid>"))
	})

	It("says how many attempts history left out, and keeps all of them in the ledger for kubectl hookpost history", func() {
		rcv.Script("/many", harness.Response{Status: 503})
		// 12 retries: 13 attempts, three more than status keeps.
		schedule := make([]time.Duration, 12)
		for i := range schedule {
			schedule[i] = time.Minute
		}
		// The circuit breaker is off: it would hold the attempts after the tenth failure in a row.
		subscribe("many", "/many", fixtures.Schedule(schedule...), fixtures.CircuitBreaker(0, 30*time.Second, 0))
		name := deliver("many", "evt-many")
		Eventually(attemptsOf(ns, name)).Should(BeEquivalentTo(1))
		for n := 2; n <= 13; n++ {
			stepAndPoke(ns, name, time.Minute)
			Eventually(attemptsOf(ns, name)).Should(BeEquivalentTo(n))
		}
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryFailed))
		d := getDelivery(ns, name)()
		Expect(d.Status.History).To(HaveLen(maxHistory))
		Expect(d.Status.History[0].Number).To(BeEquivalentTo(4))
		Expect(d.Status.AttemptsNotInHistory).To(BeEquivalentTo(3))

		By("showing the count in kubectl get -o wide and kubectl describe")
		wide := strings.Split(strings.TrimSpace(kubectl("get", "whdel", name, "-n", ns, "-o", "wide")), "\n")
		Expect(wide).To(HaveLen(2))
		Expect(strings.Join(strings.Fields(wide[0]), " ")).To(HaveSuffix("EVENT ID ERROR NOT IN HISTORY"))
		cells := strings.Fields(wide[1])
		Expect(cells[len(cells)-1]).To(Equal("3"), wide[1])
		Expect(kubectl("describe", "whdel", name, "-n", ns)).To(MatchRegexp(`Attempts Not In History:\s+3\n`))

		By("finding all 13 attempts in the ledger, each once")
		// The controller flushes the ledger before it writes the status that records an attempt.
		rows, err := testLedger.Query(ctx, ledgerpg.Filter{Namespace: ns, EventID: "evt-many"})
		Expect(err).NotTo(HaveOccurred())
		Expect(rows).To(HaveLen(13))
		for i, a := range rows {
			Expect(a.Number).To(Equal(i+1), "ledger row %d", i)
			Expect(a.StatusCode).To(Equal(503))
			Expect(a.DeliveryName).To(Equal(name))
		}
		Expect(rows[12].Outcome).To(Equal(ledger.OutcomeFailed))

		By("listing all 13 with kubectl hookpost history")
		plugin, err := harness.BuildPlugin(GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		out := run(plugin, "history", "--kubeconfig", kubeconfigPath, "-n", ns, "--event", "evt-many", "--ledger-dsn", suitePostgres.DSN())
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(lines).To(HaveLen(14), out)
		Expect(strings.Fields(lines[0])).To(HaveExactElements("TIME", "SUBSCRIPTION", "EVENT", "TYPE", "ATTEMPT", "STATUS", "DURATION", "OUTCOME", "ERROR"))
		for i, line := range lines[1:] {
			Expect(strings.Fields(line)[1:6]).To(Equal([]string{"many", "evt-many", "order.created", strconv.Itoa(i + 1), "503"}), line)
		}
	})

	// The rate limit (spec.rateLimit) is driven by the suite's fake clock, which stands still unless a spec steps
	// it: a limited subscription's deliveries then wait for their booked starts however long the spec runs, so the
	// assertions count requests and attempts, never time.
	It("holds a rate-limited subscription's deliveries for their turns, without spending retries, while another subscription's all arrive", func() {
		// 1 per second, burst 1: with the clock standing still, one attempt starts and the others are booked 1, 2
		// and 3 s ahead. The first attempt fails, so its retry has to book a turn behind them.
		rcv.Script("/limited", harness.Response{Status: 500}, harness.Response{Status: 200})
		subscribe("limited", "/limited", fixtures.RateLimit(1, 1), fixtures.Schedule(time.Second, time.Second))
		subscribe("free", "/free")
		limited := deliverEach("limited", "evt-l1", "evt-l2", "evt-l3", "evt-l4")
		free := deliverEach("free", "evt-f1", "evt-f2", "evt-f3", "evt-f4")

		Eventually(deliveryStates(ns, free), "20s").Should(Equal(map[string]int{"Succeeded/1/Succeeded": 4}), "the unlimited subscription is not held behind the limited one")
		Expect(rcv.Requests("/free")).To(HaveLen(4))
		// Waits of 2 s and more are noted in status once; the 1 s one is not worth an API write, so that delivery's
		// status stays as it was created (empty), as for a busy host.
		Eventually(deliveryStates(ns, limited)).Should(Equal(map[string]int{
			"Retrying/1/Retrying": 1, "/0/": 1, "Pending/0/RateLimited": 2,
		}))
		Consistently(requestsTo(rcv, "/limited"), "2500ms").Should(Equal(1), "no second attempt starts while the clock stands still")

		// 1 s later (whole seconds: status times are kept to the second, and other specs compare them): the delivery
		// booked 1 s ahead goes; the failed one's retry is due but books a turn after the two still waiting (4 s),
		// keeping its attempt count and its phase.
		fakeClock.Step(time.Second)
		Eventually(requestsTo(rcv, "/limited"), "10s").Should(Equal(2))
		Eventually(deliveryStates(ns, limited), "10s").Should(Equal(map[string]int{
			"Retrying/1/RateLimited": 1, "Succeeded/1/Succeeded": 1, "Pending/0/RateLimited": 2,
		}))
		Consistently(requestsTo(rcv, "/limited"), "2500ms").Should(Equal(2))
		for _, name := range limited {
			d := getDelivery(ns, name)()
			if c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered); c.Reason == hookpostv1.ReasonRateLimited {
				Expect(c.Message).To(ContainSubstring("spec.rateLimit (1 per second, burst 1)"))
				Expect(c.Message).To(ContainSubstring("spends no retry"))
			}
		}

		// Past every booked turn, everything is delivered: four first attempts and one retry, none Failed.
		fakeClock.Step(10 * time.Second)
		Eventually(deliveryStates(ns, limited), "20s").Should(Equal(map[string]int{"Succeeded/1/Succeeded": 3, "Succeeded/2/Succeeded": 1}))
		Expect(rcv.Requests("/limited")).To(HaveLen(5))
	})
})
