package controller

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// The rate limit is driven by the suite's fake clock, which stands still unless a spec steps it: a limited
// subscription's deliveries then wait for their booked starts however long the spec runs, so every assertion
// below counts requests and attempts, never time.
var _ = Describe("A subscription's rate limit (spec.rateLimit)", func() {
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
	subscribe := func(name, path string, opts ...fixtures.SubscriptionOption) {
		opts = append([]fixtures.SubscriptionOption{fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")}, opts...)
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, name, rcv.URL+path, opts...))).To(Succeed())
		Eventually(readyOf(ns, name)).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
	}
	deliverAll := func(sub string, ids ...string) []string {
		var names []string
		for _, id := range ids {
			d := fixtures.Delivery(ns, sub, id, "order.created", map[string]any{"order_id": 1})
			testSealer.Seal(d)
			Expect(k8sClient.Create(ctx, d)).To(Succeed())
			names = append(names, d.Name)
		}
		return names
	}
	// byState counts deliveries by "phase/attempts/reason" of their Delivered condition.
	byState := func(names []string) func() map[string]int {
		return func() map[string]int {
			n := map[string]int{}
			for _, name := range names {
				d := getDelivery(ns, name)()
				reason := ""
				if c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered); c != nil {
					reason = c.Reason
				}
				n[fmt.Sprintf("%s/%d/%s", d.Status.Phase, d.Status.Attempts, reason)]++
			}
			return n
		}
	}

	It("holds the limited subscription's deliveries for their turns, without spending retries, while another subscription's all arrive", func() {
		// 1 per second, burst 1: with the clock standing still, one attempt starts and the others are booked 1, 2
		// and 3 s ahead. The first attempt fails, so its retry has to book a turn behind them.
		rcv.Script("/limited", harness.Response{Status: 500}, harness.Response{Status: 200})
		subscribe("limited", "/limited", fixtures.RateLimit(1, 1), fixtures.Schedule(time.Second, time.Second))
		subscribe("free", "/free")
		limited := deliverAll("limited", "evt-l1", "evt-l2", "evt-l3", "evt-l4")
		free := deliverAll("free", "evt-f1", "evt-f2", "evt-f3", "evt-f4")

		Eventually(byState(free), "20s").Should(Equal(map[string]int{"Succeeded/1/Succeeded": 4}), "the unlimited subscription is not held behind the limited one")
		Expect(rcv.Requests("/free")).To(HaveLen(4))
		// Waits of 2 s and more are noted in status once; the 1 s one is not worth an API write, so that delivery's
		// status stays as it was created (empty), as for a busy host.
		Eventually(byState(limited)).Should(Equal(map[string]int{
			"Retrying/1/Retrying": 1, "/0/": 1, "Pending/0/RateLimited": 2,
		}))
		Consistently(requestsTo(rcv, "/limited"), "2500ms").Should(Equal(1), "no second attempt starts while the clock stands still")

		// 1 s later (whole seconds: status times are kept to the second, and other specs compare them): the delivery
		// booked 1 s ahead goes; the failed one's retry is due but books a turn after the two still waiting (4 s),
		// keeping its attempt count and its phase.
		fakeClock.Step(time.Second)
		Eventually(requestsTo(rcv, "/limited"), "10s").Should(Equal(2))
		Eventually(byState(limited), "10s").Should(Equal(map[string]int{
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
		Eventually(byState(limited), "20s").Should(Equal(map[string]int{"Succeeded/1/Succeeded": 3, "Succeeded/2/Succeeded": 1}))
		Expect(rcv.Requests("/limited")).To(HaveLen(5))
	})
})
