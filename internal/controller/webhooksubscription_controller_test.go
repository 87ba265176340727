package controller

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
)

func readyOf(ns, name string) func() *metav1.Condition {
	return func() *metav1.Condition {
		return meta.FindStatusCondition(getSubscription(ns, name)().Status.Conditions, hookpostv1.ConditionReady)
	}
}

var _ = Describe("WebhookSubscription controller", func() {
	ctx := context.Background()
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("generates a signing secret it owns when the spec names none, and becomes Ready", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "gen", "https://example.com/hook"))).To(Succeed())
		Eventually(readyOf(ns, "gen")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue), HaveField("Reason", hookpostv1.ReasonSecretGenerated)))
		sub := getSubscription(ns, "gen")()
		Expect(sub.Status.SigningSecretRef).To(Equal(&hookpostv1.SecretKeyRef{Name: "gen-signing-secret", Key: "secret"}))
		Expect(sub.Status.ObservedGeneration).To(Equal(sub.Generation))

		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gen-signing-secret"}, s)).To(Succeed())
		Expect(s.Data["secret"]).To(HaveLen(64), "a 256-bit hex secret")
		Expect(metav1.IsControlledBy(s, sub)).To(BeTrue(), "the secret goes when the subscription goes")
	})

	It("labels a generated Secret that lost its label (as those generated before the label have), so its cache sees it", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "relabel", "https://example.com/hook"))).To(Succeed())
		Eventually(readyOf(ns, "relabel")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "relabel-signing-secret"}, s)).To(Succeed())
		Expect(s.Labels).To(HaveKeyWithValue(hookpostv1.LabelSigningSecret, "true"))
		value := string(s.Data["secret"])

		delete(s.Labels, hookpostv1.LabelSigningSecret)
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(func() map[string]string {
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "relabel-signing-secret"}, s)).To(Succeed())
			return s.Labels
		}).Should(HaveKeyWithValue(hookpostv1.LabelSigningSecret, "true"))
		Expect(string(s.Data["secret"])).To(Equal(value), "the receiver's secret is kept, not generated anew")
		Expect(readyOf(ns, "relabel")()).To(HaveField("Status", metav1.ConditionTrue))
	})

	It("names the kubectl label command for a named Secret without the label, and becomes Ready once it is labelled", func() {
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"},
			StringData: map[string]string{"secret": "my own signing secret"}})).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "unlabelled", "https://example.com/hook", fixtures.SecretRef("plain", "")))).To(Succeed())
		Eventually(readyOf(ns, "unlabelled")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse), HaveField("Reason", hookpostv1.ReasonSecretNotLabeled)))
		Expect(readyOf(ns, "unlabelled")().Message).To(ContainSubstring("kubectl label secret plain -n " + ns + " webhooks.hookpost.io/signing-secret=true"))

		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plain"}, s)).To(Succeed())
		s.Labels = map[string]string{hookpostv1.LabelSigningSecret: "true"}
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(readyOf(ns, "unlabelled")).Should(And(HaveField("Status", metav1.ConditionTrue), HaveField("Reason", hookpostv1.ReasonSecretReady)))
	})

	It("generates a whsec_ secret for StandardWebhooks", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "std", "https://example.com/hook", fixtures.Scheme(hookpostv1.SigningSchemeStandardWebhooks)))).To(Succeed())
		Eventually(readyOf(ns, "std")).Should(HaveField("Status", metav1.ConditionTrue))
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "std-signing-secret"}, s)).To(Succeed())
		Expect(string(s.Data["secret"])).To(HavePrefix("whsec_"))
	})

	It("keys hex HMAC and an additional StandardWebhooks signature with one whsec_ secret, generated or supplied", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "migrating", "https://example.com/hook",
			fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, "")))).To(Succeed())
		Eventually(readyOf(ns, "migrating")).Should(HaveField("Status", metav1.ConditionTrue))
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "migrating-signing-secret"}, s)).To(Succeed())
		Expect(string(s.Data["secret"])).To(HavePrefix("whsec_"))

		Expect(k8sClient.Create(ctx, fixtures.SigningSecret(ns, "hex", map[string]string{"secret": "8f3c2a7d9e1b4f6a0c5d8e2b7a9f1c3e"}))).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "hexsecret", "https://example.com/hook", fixtures.SecretRef("hex", ""),
			fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, "")))).To(Succeed())
		Eventually(readyOf(ns, "hexsecret")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse), HaveField("Reason", hookpostv1.ReasonSecretInvalid)))
		Expect(readyOf(ns, "hexsecret")().Message).To(And(ContainSubstring(`cannot sign with scheme StandardWebhooks`),
			ContainSubstring("spec.signing.additional includes StandardWebhooks and one secret keys every signature, so it needs the whsec_<base64> form")))
	})

	It("waits with SecretNotFound, then becomes Ready as soon as the secret is created", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "byo", "https://example.com/hook", fixtures.SecretRef("my-secret", "")))).To(Succeed())
		Eventually(readyOf(ns, "byo")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse), HaveField("Reason", hookpostv1.ReasonSecretNotFound)))
		Expect(readyOf(ns, "byo")().Message).To(ContainSubstring(`Secret "my-secret" named in spec.signing.secretRef does not exist`))

		Expect(k8sClient.Create(ctx, fixtures.SigningSecret(ns, "my-secret", map[string]string{"other": "x"}))).To(Succeed())
		Eventually(readyOf(ns, "byo")).Should(HaveField("Reason", hookpostv1.ReasonSecretKeyMissing))

		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "my-secret"}, s)).To(Succeed())
		s.Data["secret"] = []byte("my own signing secret")
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(readyOf(ns, "byo")).Should(And(HaveField("Status", metav1.ConditionTrue), HaveField("Reason", hookpostv1.ReasonSecretReady)))
		Expect(getSubscription(ns, "byo")().Status.SigningSecretRef).To(Equal(&hookpostv1.SecretKeyRef{Name: "my-secret", Key: "secret"}))

		events := &corev1.EventList{}
		Eventually(func() []string {
			Expect(k8sClient.List(ctx, events, client.InNamespace(ns))).To(Succeed())
			var reasons []string
			for _, e := range events.Items {
				if e.InvolvedObject.Name == "byo" {
					reasons = append(reasons, e.Reason)
				}
			}
			return reasons
		}).Should(ConsistOf(hookpostv1.ReasonSecretNotFound, hookpostv1.ReasonSecretReady), "an Event only when Ready flips")
	})

	It("reports a filter expression that does not compile as not Ready with the compiler's message, and recovers when it is fixed", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "big-orders", "https://example.com/hook", fixtures.FilterExpression("amount > 100")))).To(Succeed())
		Eventually(readyOf(ns, "big-orders")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse), HaveField("Reason", hookpostv1.ReasonInvalidFilter)))
		Expect(readyOf(ns, "big-orders")().Message).To(ContainSubstring("spec.filter.expression is invalid, so no event is delivered until it is fixed"))
		Expect(readyOf(ns, "big-orders")().Message).To(ContainSubstring("undeclared reference to 'amount'"), "the compiler's own words")

		sub := getSubscription(ns, "big-orders")()
		sub.Spec.Filter.Expression = "data.amount > 100"
		Expect(k8sClient.Update(ctx, sub)).To(Succeed())
		Eventually(readyOf(ns, "big-orders")).Should(And(HaveField("Status", metav1.ConditionTrue), HaveField("ObservedGeneration", sub.Generation)), "the Update returned the new generation")

		Eventually(eventReasons(ns)).Should(ConsistOf(hookpostv1.ReasonInvalidFilter, hookpostv1.ReasonSecretGenerated), "an Event only when Ready flips")
	})

	It("reports an ordering key that does not compile as not Ready with the compiler's message, and defaults onExhausted to Skip", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "ordered", "https://example.com/hook", fixtures.Ordering("order_id", "")))).To(Succeed())
		Eventually(readyOf(ns, "ordered")).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse), HaveField("Reason", hookpostv1.ReasonInvalidOrderingKey)))
		Expect(readyOf(ns, "ordered")().Message).To(ContainSubstring("spec.ordering.key is invalid"))
		Expect(readyOf(ns, "ordered")().Message).To(ContainSubstring("undeclared reference to 'order_id'"), "the compiler's own words")

		sub := getSubscription(ns, "ordered")()
		Expect(sub.Spec.Ordering.OnExhausted).To(Equal(hookpostv1.OrderingSkip))
		sub.Spec.Ordering.Key = "string(data.order_id)"
		Expect(k8sClient.Update(ctx, sub)).To(Succeed())
		Eventually(readyOf(ns, "ordered")).Should(And(HaveField("Status", metav1.ConditionTrue), HaveField("ObservedGeneration", sub.Generation)))
	})

	It("reports a paused subscription as not Ready with reason Paused", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "paused", "https://example.com/hook", fixtures.Paused()))).To(Succeed())
		Eventually(readyOf(ns, "paused")).Should(And(Not(BeNil()), HaveField("Reason", hookpostv1.ReasonPaused)))
	})

	It("says when tenant isolation keeps events away for want of a grant, and recovers when a cluster admin grants them", func() {
		bare := newNamespaceWith(nil)
		Expect(k8sClient.Create(ctx, fixtures.Subscription(bare, "orders", "https://example.com/hook", fixtures.Filter([]string{"acme", "globex"}, nil)))).To(Succeed())
		granted := func() *metav1.Condition {
			return meta.FindStatusCondition(getSubscription(bare, "orders")().Status.Conditions, hookpostv1.ConditionTenantsGranted)
		}
		Eventually(granted).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse), HaveField("Reason", hookpostv1.ReasonNoTenantGrant)))
		Expect(granted().Message).To(ContainSubstring("kubectl annotate namespace " + bare + " webhooks.hookpost.io/tenants="))
		Eventually(readyOf(bare, "orders")).Should(HaveField("Status", metav1.ConditionTrue), "Ready is about the subscription's own settings")

		n := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: bare}, n)).To(Succeed())
		n.Annotations = map[string]string{hookpostv1.AnnotationTenants: "acme"}
		Expect(k8sClient.Update(ctx, n)).To(Succeed())
		Eventually(granted).Should(HaveField("Reason", hookpostv1.ReasonTenantNotGranted))
		Expect(granted().Message).To(ContainSubstring("spec.filter.tenants names globex"))

		n.Annotations[hookpostv1.AnnotationTenants] = "acme,globex"
		Expect(k8sClient.Update(ctx, n)).To(Succeed())
		Eventually(granted).Should(And(HaveField("Status", metav1.ConditionTrue), HaveField("Reason", hookpostv1.ReasonTenantsGranted)))

		events := &corev1.EventList{}
		Eventually(func() []string {
			Expect(k8sClient.List(ctx, events, client.InNamespace(bare))).To(Succeed())
			var reasons []string
			for _, e := range events.Items {
				if e.InvolvedObject.Name == "orders" && e.Action == "TenantsGranted" {
					reasons = append(reasons, e.Reason)
				}
			}
			return reasons
		}).Should(ConsistOf(hookpostv1.ReasonNoTenantGrant, hookpostv1.ReasonTenantsGranted), "an Event only when the condition flips")
	})
})
