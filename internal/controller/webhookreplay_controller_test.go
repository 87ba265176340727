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

var _ = Describe("WebhookReplay controller", func() {
	ctx := context.Background()
	var (
		ns  string
		rcv *harness.Receiver
	)
	BeforeEach(func() {
		ns = newNamespace()
		rcv = newReceiver()
		Expect(k8sClient.Create(ctx, fixtures.SigningSecret(ns, "signing", map[string]string{"secret": testSecret}))).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "orders", rcv.URL+"/orders", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")))).To(Succeed())
		// Longer than the default second: when this Describe runs first, the manager may still be syncing its caches.
		Eventually(readyOf(ns, "orders")).WithTimeout(summaryWait).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
	})

	// deliverAll creates sealed deliveries of the subscription, as ingest does, and waits until each is in phase.
	deliverAll := func(phase hookpostv1.DeliveryPhase, eventIDs ...string) []string {
		var names []string
		for _, id := range eventIDs {
			d := fixtures.Delivery(ns, "orders", id, "order.created", map[string]any{"order_id": id})
			testSealer.Seal(d)
			Expect(k8sClient.Create(ctx, d)).To(Succeed())
			names = append(names, d.Name)
		}
		for _, n := range names {
			Eventually(phaseOf(ns, n)).Should(Equal(phase))
		}
		return names
	}
	getReplay := func(name string) func() *hookpostv1.WebhookReplay {
		return func() *hookpostv1.WebhookReplay {
			rp := &hookpostv1.WebhookReplay{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rp)).To(Succeed())
			return rp
		}
	}
	// stepAndPokeReplay advances the fake clock and wakes the replay, as its requeue timer would.
	stepAndPokeReplay := func(name string, by time.Duration) {
		fakeClock.Step(by)
		rp := getReplay(name)()
		patch := client.MergeFrom(rp.DeepCopy())
		rp.Annotations = map[string]string{"test.hookpost.io/poke": fmt.Sprint(time.Now().UnixNano())}
		Expect(k8sClient.Patch(ctx, rp, patch)).To(Succeed())
	}
	newReplay := func(name string, perSecond int32, phases ...hookpostv1.DeliveryPhase) *hookpostv1.WebhookReplay {
		rp := &hookpostv1.WebhookReplay{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: hookpostv1.WebhookReplaySpec{
				Selector: hookpostv1.ReplaySelector{SubscriptionName: "orders", Phases: phases},
				Rate:     hookpostv1.ReplayRate{PerSecond: perSecond},
			},
		}
		Expect(k8sClient.Create(ctx, rp)).To(Succeed())
		return rp
	}

	It("replays exactly the Failed deliveries it selects, one per second at perSecond 1, and reports them Complete", func() {
		rcv.Script("/orders", harness.Response{Status: 400, Body: "not yet"})
		failed := deliverAll(hookpostv1.DeliveryFailed, "dl-1", "dl-2", "dl-3", "dl-4", "dl-5")
		rcv.Script("/orders") // the receiver is fixed: 200 from now on
		succeeded := deliverAll(hookpostv1.DeliverySucceeded, "ok-1", "ok-2")
		Expect(rcv.Requests("/orders")).To(HaveLen(7))

		newReplay("dead-letters", 1, hookpostv1.DeliveryFailed)
		Eventually(func() int32 { return getReplay("dead-letters")().Status.Selected }).Should(BeEquivalentTo(5))
		Eventually(requestsTo(rcv, "/orders")).Should(Equal(8), "the first replay goes at once")
		Consistently(requestsTo(rcv, "/orders"), "500ms").Should(Equal(8), "the next waits for the clock: 1 per second")

		// The suite's subscription replay budget is burst 3, 6 a minute: five replays within four seconds pass
		// only because a WebhookReplay's replays go at its own rate.
		for sent := 2; sent <= 5; sent++ {
			stepAndPokeReplay("dead-letters", time.Second)
			Eventually(requestsTo(rcv, "/orders")).Should(Equal(7 + sent))
		}
		Eventually(func() *hookpostv1.WebhookReplay { return getReplay("dead-letters")() }).Should(
			HaveField("Status", And(HaveField("Selected", BeEquivalentTo(5)), HaveField("Sent", BeEquivalentTo(5)),
				HaveField("Succeeded", BeEquivalentTo(5)), HaveField("Failed", BeEquivalentTo(0)))))
		rp := getReplay("dead-letters")()
		c := meta.FindStatusCondition(rp.Status.Conditions, hookpostv1.ConditionComplete)
		Expect(c).NotTo(BeNil())
		Expect(c.Status).To(Equal(metav1.ConditionTrue))
		Expect(c.Reason).To(Equal(hookpostv1.ReasonReplaySucceeded))
		Expect(rp.Status.CompletionTime).NotTo(BeNil())

		for _, n := range failed {
			d := getDelivery(ns, n)()
			Expect(d.Status.Phase).To(Equal(hookpostv1.DeliverySucceeded))
			Expect(d.Status.Attempts).To(BeEquivalentTo(2), "history is kept: the replay is attempt 2")
		}
		for _, n := range succeeded {
			Expect(getDelivery(ns, n)().Status.Attempts).To(BeEquivalentTo(1), "a Succeeded delivery is not selected")
		}
		Consistently(requestsTo(rcv, "/orders"), "500ms").Should(Equal(12), "each selected delivery is replayed once")
		Eventually(eventReasons(ns)).Should(ContainElements(hookpostv1.ReasonReplayStarted, hookpostv1.ReasonReplaySucceeded))
	})

	It("counts deliveries that fail again and completes with SomeFailed", func() {
		rcv.Script("/orders", harness.Response{Status: 400})
		deliverAll(hookpostv1.DeliveryFailed, "again-1", "again-2")
		newReplay("still-broken", 100, hookpostv1.DeliveryFailed)
		Eventually(func() *metav1.Condition {
			return meta.FindStatusCondition(getReplay("still-broken")().Status.Conditions, hookpostv1.ConditionComplete)
		}).Should(And(Not(BeNil()), HaveField("Reason", hookpostv1.ReasonReplaySomeFailed)))
		st := getReplay("still-broken")().Status
		Expect(st.Sent).To(BeEquivalentTo(2))
		Expect(st.Failed).To(BeEquivalentTo(2))
		Expect(rcv.Requests("/orders")).To(HaveLen(4))
	})

	It("completes at once with NothingSelected when no delivery matches", func() {
		newReplay("empty", 10, hookpostv1.DeliveryFailed)
		Eventually(func() *metav1.Condition {
			return meta.FindStatusCondition(getReplay("empty")().Status.Conditions, hookpostv1.ConditionComplete)
		}).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue), HaveField("Reason", hookpostv1.ReasonNothingSelected)))
	})

	It("refuses a change to its spec, and a time range that ends before it starts, naming the field", func() {
		rp := newReplay("fixed", 10)
		patch := client.MergeFrom(rp.DeepCopy())
		rp.Spec.Rate.PerSecond = 50
		err := k8sClient.Patch(ctx, rp, patch)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec is immutable: a WebhookReplay records one bulk replay; create a new WebhookReplay to replay again"))

		from := metav1.NewTime(time.Date(2025, 11, 16, 12, 0, 0, 0, time.UTC))
		to := metav1.NewTime(from.Add(-time.Hour))
		bad := &hookpostv1.WebhookReplay{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backwards"},
			Spec:       hookpostv1.WebhookReplaySpec{Selector: hookpostv1.ReplaySelector{From: &from, To: &to}},
		}
		err = k8sClient.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.selector.from must be before spec.selector.to"))

		bad = &hookpostv1.WebhookReplay{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "too-fast"},
			Spec:       hookpostv1.WebhookReplaySpec{Rate: hookpostv1.ReplayRate{PerSecond: 1000}},
		}
		err = k8sClient.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.rate.perSecond"))

		bad = &hookpostv1.WebhookReplay{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "source-by-phase"},
			Spec: hookpostv1.WebhookReplaySpec{
				Selector: hookpostv1.ReplaySelector{Phases: []hookpostv1.DeliveryPhase{hookpostv1.DeliveryFailed}},
				Source:   &hookpostv1.ReplaySource{Kind: hookpostv1.ReplaySourceOutbox, Since: from},
			},
		}
		err = k8sClient.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.selector.phases and spec.selector.reasons select deliveries by how they ended, and spec.source re-reads events that have no outcome yet: remove them, or remove spec.source"))

		bad.Spec = hookpostv1.WebhookReplaySpec{Source: &hookpostv1.ReplaySource{Kind: "Kafka", Since: from}}
		err = k8sClient.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.source.kind"))
	})
})
