package controller

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

var _ = Describe("Circuit breaker", func() {
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
	circuitOf := func(name string) func() *metav1.Condition {
		return func() *metav1.Condition {
			return meta.FindStatusCondition(getSubscription(ns, name)().Status.Conditions, hookpostv1.ConditionCircuitOpen)
		}
	}
	// deliver creates n sealed deliveries of sub, as ingest does, and returns their names.
	deliver := func(sub, prefix string, n int, opts ...fixtures.DeliveryOption) []string {
		var names []string
		for i := range n {
			d := fixtures.Delivery(ns, sub, fmt.Sprintf("%s-%d", prefix, i), "order.created", map[string]any{"n": i}, opts...)
			testSealer.Seal(d)
			Expect(k8sClient.Create(ctx, d)).To(Succeed())
			names = append(names, d.Name)
		}
		return names
	}

	It("holds a failing endpoint's deliveries without spending their retry budget, probes once, and sends them after a probe succeeds", func() {
		rcv.Script("/cb", harness.Response{Status: 503})
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "cb", rcv.URL+"/cb", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret"),
			fixtures.Schedule(time.Hour), fixtures.CircuitBreaker(3, time.Minute, 0)))).To(Succeed())
		Eventually(readyOf(ns, "cb")).Should(HaveField("Status", metav1.ConditionTrue))

		By("opening after three failed attempts in a row")
		failing := deliver("cb", "fail", 3)
		for _, name := range failing {
			Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryRetrying))
		}
		Eventually(circuitOf("cb")).WithTimeout(summaryWait).Should(And(Not(BeNil()),
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", hookpostv1.ReasonCircuitOpened),
			HaveField("Message", ContainSubstring("3 consecutive failed attempts"))))
		Eventually(eventReasons(ns)).Should(ContainElement(hookpostv1.ReasonCircuitOpened))

		By("holding new deliveries Pending, with no attempt made")
		held := deliver("cb", "held", 5)
		Consistently(requestsTo(rcv, "/cb"), "1s").Should(Equal(3))
		for _, name := range held {
			Expect(getDelivery(ns, name)().Status.Attempts).To(BeZero(), "a held delivery spends no attempt")
		}

		By("sending test deliveries through the open circuit")
		probe := deliver("cb", "test", 1, fixtures.Test())[0]
		Eventually(attemptsOf(ns, probe)).Should(BeEquivalentTo(1))
		Expect(circuitOf("cb")()).To(HaveField("Status", metav1.ConditionTrue), "a test delivery does not count for the circuit")

		By("letting one probe through once the open period ends, and closing on its success")
		rcv.Script("/cb", harness.Response{Status: 200})
		fakeClock.Step(time.Minute)
		poke(getDelivery(ns, held[0])())
		Eventually(circuitOf("cb")).WithTimeout(summaryWait).Should(And(
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", hookpostv1.ReasonCircuitClosed)))
		Eventually(eventReasons(ns)).Should(ContainElement(hookpostv1.ReasonCircuitClosed))

		By("sending every held delivery with its first attempt, none lost or failed")
		for _, name := range held {
			Eventually(phaseOf(ns, name)).WithTimeout(summaryWait).Should(Equal(hookpostv1.DeliverySucceeded))
			Expect(getDelivery(ns, name)().Status.Attempts).To(BeEquivalentTo(1))
		}
		for _, name := range failing {
			Expect(getDelivery(ns, name)()).To(And(HaveField("Status.Phase", hookpostv1.DeliveryRetrying), HaveField("Status.Attempts", BeEquivalentTo(1))),
				"deliveries that failed before the circuit opened keep their schedule")
		}
	})

	It("reopens for twice as long when the probe fails", func() {
		rcv.Script("/down", harness.Response{Status: 500})
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "down", rcv.URL+"/down", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret"),
			fixtures.Schedule(time.Hour), fixtures.CircuitBreaker(2, time.Minute, 0)))).To(Succeed())
		Eventually(readyOf(ns, "down")).Should(HaveField("Status", metav1.ConditionTrue))
		deliver("down", "fail", 2)
		Eventually(circuitOf("down")).WithTimeout(summaryWait).Should(HaveField("Status", metav1.ConditionTrue))
		held := deliver("down", "held", 1)[0]

		fakeClock.Step(time.Minute)
		probedAt := fakeClock.Now()
		poke(getDelivery(ns, held)())
		Eventually(attemptsOf(ns, held)).Should(BeEquivalentTo(1))
		want := "the next probe attempt is at " + probedAt.Add(2*time.Minute).UTC().Format(time.RFC3339)
		Eventually(circuitOf("down")).WithTimeout(summaryWait).Should(And(HaveField("Status", metav1.ConditionTrue),
			HaveField("Message", ContainSubstring(want))))
		Expect(requestsTo(rcv, "/down")()).To(Equal(3))
	})

	It("disables the subscription on 410 Gone when disableOnGone is set, until its spec changes", func() {
		rcv.Script("/gone", harness.Response{Status: 410})
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "gone", rcv.URL+"/gone", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret"),
			func(s *hookpostv1.WebhookSubscription) { s.Spec.CircuitBreaker.DisableOnGone = true }))).To(Succeed())
		Eventually(readyOf(ns, "gone")).Should(HaveField("Status", metav1.ConditionTrue))

		first := deliver("gone", "gone", 1)[0]
		Eventually(phaseOf(ns, first)).Should(Equal(hookpostv1.DeliveryFailed))
		Eventually(readyOf(ns, "gone")).WithTimeout(summaryWait).Should(And(HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", hookpostv1.ReasonEndpointGone), HaveField("Message", ContainSubstring("410 Gone"))))
		Eventually(eventReasons(ns)).Should(ContainElement(hookpostv1.ReasonEndpointGone))

		By("holding the next deliveries, with a message that says why")
		next := deliver("gone", "next", 1)[0]
		Eventually(func() string {
			c := meta.FindStatusCondition(getDelivery(ns, next)().Status.Conditions, hookpostv1.ConditionDelivered)
			if c == nil {
				return ""
			}
			return c.Message
		}).Should(ContainSubstring("disabled: its endpoint answered 410 Gone"))
		Consistently(requestsTo(rcv, "/gone"), "500ms").Should(Equal(1))

		By("enabling it again when the spec changes")
		sub := getSubscription(ns, "gone")()
		patch := client.MergeFrom(sub.DeepCopy())
		sub.Spec.URL = rcv.URL + "/moved"
		Expect(k8sClient.Patch(ctx, sub, patch)).To(Succeed())
		Eventually(readyOf(ns, "gone")).WithTimeout(summaryWait).Should(HaveField("Status", metav1.ConditionTrue))
		Eventually(phaseOf(ns, next)).WithTimeout(summaryWait).Should(Equal(hookpostv1.DeliverySucceeded))
		Expect(rcv.Requests("/moved")).To(HaveLen(1))
	})

	It("loses nothing and fails nothing while an endpoint is down for 10 minutes with 500 events, then drains them at the bounded rate", func() {
		const events = 500
		rcv.Script("/outage", harness.Response{Status: 503})
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "outage", rcv.URL+"/outage", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret"),
			fixtures.CircuitBreaker(10, 30*time.Second, 50), fixtures.HistoryLimits(1000, 1000)))).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "healthy", rcv.URL+"/healthy", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")))).To(Succeed())
		Eventually(readyOf(ns, "outage")).Should(HaveField("Status", metav1.ConditionTrue))
		Eventually(readyOf(ns, "healthy")).Should(HaveField("Status", metav1.ConditionTrue))
		start := fakeClock.Now()

		names := deliver("outage", "ev", events)
		healthy := deliver("healthy", "ev", 20)
		Eventually(circuitOf("outage")).WithTimeout(summaryWait).Should(HaveField("Status", metav1.ConditionTrue))
		for _, name := range healthy {
			Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded), "the healthy subscription is not held")
		}

		By("stepping through 10 minutes of outage: only probes reach the endpoint")
		for fakeClock.Since(start) < 10*time.Minute {
			fakeClock.Step(30 * time.Second)
			poke(getDelivery(ns, names[0])())
			time.Sleep(50 * time.Millisecond)
		}
		sentDuringOutage := requestsTo(rcv, "/outage")()
		Expect(sentDuringOutage).To(BeNumerically("<", 10+15), "beyond the 10 failures that opened it, only probes were sent")

		By("recovering: every delivery succeeds, none Failed")
		rcv.Script("/outage", harness.Response{Status: 200})
		Eventually(func() int {
			// The workqueue waits in real time: step the clock and wake what waits on it (the retries scheduled by
			// the failed probes, and one held delivery for the probe); the circuit's closing wakes the rest.
			fakeClock.Step(30 * time.Second)
			list := &hookpostv1.WebhookDeliveryList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			succeeded, pokedPending := 0, false
			for i := range list.Items {
				d := &list.Items[i]
				if d.Spec.SubscriptionName != "outage" {
					continue
				}
				Expect(d.Status.Phase).NotTo(Equal(hookpostv1.DeliveryFailed), "delivery %s failed during the outage", d.Name)
				switch {
				case d.Status.Phase == hookpostv1.DeliverySucceeded:
					succeeded++
				case d.Status.Phase == hookpostv1.DeliveryRetrying:
					poke(d)
				case !pokedPending:
					poke(d)
					pokedPending = true
				}
			}
			return succeeded
		}).WithTimeout(2 * time.Minute).WithPolling(300 * time.Millisecond).Should(Equal(events))
		got := map[string]bool{}
		for _, r := range rcv.Requests("/outage") {
			if r.Header.Get("X-Hookpost-Attempt") != "" {
				got[r.Header.Get("X-Event-Id")] = true
			}
		}
		Expect(got).To(HaveLen(events), "every event reached the receiver")
	})
})
