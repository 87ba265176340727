package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

var _ = Describe("The manager's cache", func() {
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
	subscribe := func(name, path string) {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, name, rcv.URL+path, fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")))).To(Succeed())
		Eventually(readyOf(ns, name)).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
	}
	deliver := func(sub, eventID string, opts ...fixtures.DeliveryOption) string {
		d := fixtures.Delivery(ns, sub, eventID, "order.created", map[string]any{"order_id": 1001, "note": "kept in etcd, not in the cache"}, opts...)
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		return d.Name
	}
	cached := func(name string) func() *hookpostv1.WebhookDelivery {
		return func() *hookpostv1.WebhookDelivery {
			d := &hookpostv1.WebhookDelivery{}
			Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
			return d
		}
	}
	appliedWithKubectl := func(d *hookpostv1.WebhookDelivery) {
		d.Annotations = map[string]string{annotationLastApplied: `{"apiVersion":"webhooks.hookpost.io/v1alpha1","kind":"WebhookDelivery"}`}
	}

	It("holds a finished delivery without its payload, managedFields or last-applied-configuration, and a replay still sends the original data", func() {
		subscribe("orders", "/orders")
		name := deliver("orders", "evt-stripped", appliedWithKubectl)
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		Expect(rcv.Requests("/orders")).To(HaveLen(1))
		sent := rcv.Requests("/orders")[0].Body
		Expect(string(sent)).To(ContainSubstring(`"order_id":1001`))

		stored := getDelivery(ns, name)()
		Expect(stored.Spec.Data).NotTo(BeNil(), "the API server keeps the payload")
		Expect(stored.ManagedFields).NotTo(BeEmpty())
		Expect(stored.Annotations).To(HaveKey(annotationLastApplied))

		Eventually(func() *apiextensionsv1.JSON { return cached(name)().Spec.Data }).Should(BeNil(), "the cache drops a finished delivery's payload")
		d := cached(name)()
		Expect(d.ManagedFields).To(BeEmpty())
		Expect(d.Annotations).NotTo(HaveKey(annotationLastApplied))
		Expect(dataStripped(d)).To(BeTrue())

		By("replaying the finished delivery")
		patch := client.MergeFrom(stored.DeepCopy())
		stored.Annotations[hookpostv1.AnnotationReplay] = "after-stripping"
		Expect(k8sClient.Patch(ctx, stored, patch)).To(Succeed())
		Eventually(requestsTo(rcv, "/orders")).Should(Equal(2))
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		replayed := rcv.Requests("/orders")[1]
		Expect(replayed.Header.Get("X-Hookpost-Attempt")).To(Equal("2"))
		Expect(string(replayed.Body)).To(Equal(string(sent)), "the replay sends the payload the cache does not hold")

		stored = getDelivery(ns, name)()
		Expect(stored.Spec.Data).NotTo(BeNil())
		Expect(stored.Annotations).NotTo(HaveKey(annotationDataStripped), "the in-memory mark never reaches the API server")
	})

	It("keeps the payload of a delivery still to be sent", func() {
		rcv.Script("/down", harness.Response{Status: 503})
		subscribe("down", "/down")
		name := deliver("down", "evt-retrying", appliedWithKubectl)
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryRetrying))
		Eventually(func() int32 { return cached(name)().Status.Attempts }).Should(BeEquivalentTo(1))
		d := cached(name)()
		Expect(d.Spec.Data).NotTo(BeNil())
		Expect(string(d.Spec.Data.Raw)).To(ContainSubstring(`"order_id":1001`))
		Expect(dataStripped(d)).To(BeFalse())
		Expect(d.ManagedFields).To(BeEmpty())
		Expect(d.Annotations).NotTo(HaveKey(annotationLastApplied))
	})

	It("counts the retry backlog as deliveries start retrying and as their retries succeed", func() {
		// Other specs' deliveries retry too, so the gauge is compared with the API server's count of Retrying
		// deliveries, and this spec's own are checked to be among them.
		retryingInAPIServer := func() float64 {
			list := &hookpostv1.WebhookDeliveryList{}
			Expect(k8sClient.List(ctx, list)).To(Succeed())
			n := 0
			for _, d := range list.Items {
				if d.Status.Phase == hookpostv1.DeliveryRetrying {
					n++
				}
			}
			return float64(n)
		}
		gaugeMatches := func(g Gomega) {
			g.Expect(retryBacklog.Count()).To(Equal(retryingInAPIServer()))
		}

		rcv.Script("/backlog", harness.Response{Status: 500}, harness.Response{Status: 500}, harness.Response{Status: 500}, harness.Response{Status: 200})
		subscribe("backlog", "/backlog")
		var names []string
		for i := range 3 {
			names = append(names, deliver("backlog", fmt.Sprintf("evt-backlog-%d", i)))
		}
		for _, n := range names {
			Eventually(phaseOf(ns, n)).Should(Equal(hookpostv1.DeliveryRetrying))
		}
		Eventually(gaugeMatches).Should(Succeed())
		Expect(retryBacklog.Count()).To(BeNumerically(">=", 3))
		withOurs := retryBacklog.Count()

		By("letting the retries succeed")
		fakeClock.Step(time.Minute)
		for _, n := range names {
			poke(getDelivery(ns, n)())
		}
		for _, n := range names {
			Eventually(phaseOf(ns, n)).Should(Equal(hookpostv1.DeliverySucceeded))
		}
		Eventually(gaugeMatches).Should(Succeed())
		Expect(retryBacklog.Count()).To(BeNumerically("<=", withOurs-3))

		By("deleting a retrying delivery")
		rcv.Script("/gone-while-retrying", harness.Response{Status: 500})
		subscribe("deleted", "/gone-while-retrying")
		doomed := deliver("deleted", "evt-deleted")
		Eventually(phaseOf(ns, doomed)).Should(Equal(hookpostv1.DeliveryRetrying))
		Eventually(gaugeMatches).Should(Succeed())
		Expect(k8sClient.Delete(ctx, getDelivery(ns, doomed)())).To(Succeed())
		Eventually(gaugeMatches).Should(Succeed())
	})
})

func TestStripDeliveryDropsOnlyFinishedPayloads(t *testing.T) {
	for phase, wantStripped := range map[hookpostv1.DeliveryPhase]bool{
		"": false, hookpostv1.DeliveryPending: false, hookpostv1.DeliveryRetrying: false,
		hookpostv1.DeliverySucceeded: true, hookpostv1.DeliveryFailed: true,
	} {
		d := fixtures.Delivery("ns", "sub", "evt", "order.created", map[string]any{"id": 1})
		d.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
		d.Annotations = map[string]string{annotationLastApplied: "{}", "keep": "me"}
		d.Status.Phase = phase
		for range 2 { // the informer may transform an object it already transformed
			if _, err := stripDelivery(d); err != nil {
				t.Fatal(err)
			}
		}
		if got := d.Spec.Data == nil; got != wantStripped || dataStripped(d) != wantStripped {
			t.Errorf("phase %q: data dropped %v, marked %v, want %v", phase, got, dataStripped(d), wantStripped)
		}
		if d.ManagedFields != nil || d.Annotations[annotationLastApplied] != "" || d.Annotations["keep"] != "me" {
			t.Errorf("phase %q: managedFields %v annotations %v", phase, d.ManagedFields, d.Annotations)
		}
	}
}

func TestRetryBacklogFollowsNotifications(t *testing.T) {
	b := &RetryBacklog{retrying: map[types.UID]struct{}{}}
	d := func(uid string, phase hookpostv1.DeliveryPhase) *hookpostv1.WebhookDelivery {
		return &hookpostv1.WebhookDelivery{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}, Status: hookpostv1.WebhookDeliveryStatus{Phase: phase}}
	}
	steps := []struct {
		obj     any
		deleted bool
		want    float64
	}{
		{d("a", hookpostv1.DeliveryPending), false, 0},
		{d("a", hookpostv1.DeliveryRetrying), false, 1},
		{d("a", hookpostv1.DeliveryRetrying), false, 1}, // a resync repeats it
		{d("b", hookpostv1.DeliveryRetrying), false, 2},
		{d("a", hookpostv1.DeliverySucceeded), false, 1},
		{toolscache.DeletedFinalStateUnknown{Key: "ns/b", Obj: d("b", hookpostv1.DeliveryRetrying)}, false, 0},
		{d("c", hookpostv1.DeliveryRetrying), false, 1},
		{d("c", hookpostv1.DeliveryRetrying), true, 0},
	}
	for i, s := range steps {
		b.observe(s.obj, s.deleted)
		if got := b.Count(); got != s.want {
			t.Fatalf("step %d: count %v, want %v", i, got, s.want)
		}
	}
}
