package controller

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
)

var _ = Describe("The API's admission rules", func() {
	ctx := context.Background()
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	DescribeTable("rejects an invalid subscription with a message that names the field and the fix",
		func(sub *hookpostv1.WebhookSubscription, message string) {
			sub.Namespace = ns
			err := k8sClient.Create(ctx, sub)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("an http URL without allowInsecureHTTP",
			fixtures.Subscription("", "plain", "http://example.com/hook"),
			"spec.url must start with https://; to deliver over plain http set spec.allowInsecureHTTP: true"),
		Entry("a URL that is not absolute",
			fixtures.Subscription("", "relative", "/hook"),
			"spec.url must be an absolute http(s) URL with a host"),
		Entry("a bad event pattern",
			fixtures.Subscription("", "pattern", "https://example.com/hook", fixtures.Events("order..created")),
			"spec.events entries must be an event type such as order.created"),
		Entry("a pattern with a partial wildcard",
			fixtures.Subscription("", "partial", "https://example.com/hook", fixtures.Events("order.cre*")),
			"spec.events entries must be an event type such as order.created"),
		Entry("no events",
			fixtures.Subscription("", "empty", "https://example.com/hook", fixtures.Events()),
			"spec.events"),
		Entry("a timeout below 1s",
			fixtures.Subscription("", "fast", "https://example.com/hook", fixtures.Timeout(500*time.Millisecond)),
			"spec.timeout must be between 1s and 60s"),
		Entry("a timeout above 60s",
			fixtures.Subscription("", "slow", "https://example.com/hook", fixtures.Timeout(2*time.Minute)),
			"spec.timeout must be between 1s and 60s"),
		Entry("a reserved header",
			fixtures.Subscription("", "reserved", "https://example.com/hook", fixtures.Headers(map[string]string{"X-Event-Id": "x"})),
			"spec.headers must not set a header Hookpost owns"),
		Entry("a webhook-* header",
			fixtures.Subscription("", "wh", "https://example.com/hook", fixtures.Headers(map[string]string{"Webhook-Signature": "x"})),
			"spec.headers must not set a header Hookpost owns"),
		Entry("the configured signature header as a static header",
			fixtures.Subscription("", "sighdr", "https://example.com/hook", fixtures.SignatureHeader("X-Sig"), fixtures.Headers(map[string]string{"x-sig": "x"})),
			"spec.headers must not set the signature header named in spec.signing.header"),
		Entry("a header name that is not an HTTP token",
			fixtures.Subscription("", "hdrname", "https://example.com/hook", fixtures.Headers(map[string]string{"X Team": "x"})),
			"spec.headers names must be HTTP header names"),
		Entry("a header value over 1024 characters",
			fixtures.Subscription("", "hdrvalue", "https://example.com/hook", fixtures.Headers(map[string]string{"X-Team": strings.Repeat("x", 1025)})),
			"spec.headers values must be at most 1024 characters"),
		Entry("a connection-level header",
			fixtures.Subscription("", "hdrconn", "https://example.com/hook", fixtures.Headers(map[string]string{"Transfer-Encoding": "chunked"})),
			"spec.headers must not set connection-level headers"),
		Entry("a retry delay above 72h",
			fixtures.Subscription("", "long", "https://example.com/hook", fixtures.Schedule(time.Minute, 100*time.Hour)),
			"spec.retry.schedule entries must be durations from 1s to 72h"),
		Entry("a signature header with StandardWebhooks",
			fixtures.Subscription("", "stdhdr", "https://example.com/hook", fixtures.Scheme(hookpostv1.SigningSchemeStandardWebhooks), fixtures.SignatureHeader("X-Sig")),
			"spec.signing.header applies only to scheme HMACSHA256Hex"),
		Entry("a filter expression over 4096 bytes",
			fixtures.Subscription("", "longfilter", "https://example.com/hook", fixtures.FilterExpression("true"+strings.Repeat(" ", 4096))),
			"spec.filter.expression: Too long: may not be more than 4096 bytes"),
	)

	It("accepts http with allowInsecureHTTP and fills in the defaults", func() {
		sub := fixtures.Subscription(ns, "defaults", "http://127.0.0.1:1/hook", fixtures.InsecureHTTP(), fixtures.Events("order.*", "user.registered"))
		Expect(k8sClient.Create(ctx, sub)).To(Succeed())
		got := getSubscription(ns, "defaults")()
		Expect(got.Spec.Timeout).NotTo(BeNil())
		Expect(got.Spec.Timeout.Duration).To(Equal(10 * time.Second))
		Expect(got.Spec.Retry.Schedule).To(Equal([]metav1.Duration{{Duration: time.Minute}, {Duration: 5 * time.Minute}, {Duration: 15 * time.Minute}, {Duration: time.Hour}, {Duration: 6 * time.Hour}}))
		Expect(got.Spec.Retry.RetryOn4xx).To(BeFalse())
		Expect(got.Spec.PayloadFormat).To(Equal(hookpostv1.PayloadFormatEnvelope))
		Expect(got.Spec.Signing.Scheme).To(Equal(hookpostv1.SigningSchemeHMACSHA256Hex))
		Expect(*got.Spec.History.SucceededLimit).To(BeEquivalentTo(100))
		Expect(*got.Spec.History.FailedLimit).To(BeEquivalentTo(1000))
	})

	It("refuses any change to a delivery's spec", func() {
		d := fixtures.Delivery(ns, "nosub", "evt-immutable", "order.created", map[string]any{"order_id": 1})
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		patch := client.MergeFrom(d.DeepCopy())
		d.Spec.Event.Type = "order.cancelled"
		err := k8sClient.Patch(ctx, d, patch)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec is immutable: a WebhookDelivery records one event for one subscription"))
	})
})

var _ = Describe("kubectl get", func() {
	It("shows the printer columns for subscriptions and deliveries", func() {
		ctx := context.Background()
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "orders", "https://example.com/hooks", fixtures.Paused()))).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.Delivery(ns, "orders", "evt-cols", "order.created", map[string]any{"order_id": 1}))).To(Succeed())
		Eventually(readyOf(ns, "orders")).Should(And(Not(BeNil()), HaveField("Reason", hookpostv1.ReasonPaused)))

		user, err := testEnv.AddUser(envtest.User{Name: "kubectl", Groups: []string{"system:masters"}}, nil)
		Expect(err).NotTo(HaveOccurred())
		kubeconfig, err := user.KubeConfig()
		Expect(err).NotTo(HaveOccurred())
		path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
		Expect(os.WriteFile(path, kubeconfig, 0o600)).To(Succeed())

		out, err := exec.Command("kubectl", "--kubeconfig", path, "-n", ns, "get", "whsub,whdel").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		text := string(out)
		for _, col := range []string{"URL", "READY", "DELIVERED", "FAILED", "LAST DELIVERY", "AGE", "SUBSCRIPTION", "EVENT", "PHASE", "ATTEMPTS", "CODE", "NEXT RETRY"} {
			Expect(text).To(ContainSubstring(col))
		}
		Expect(text).To(ContainSubstring("https://example.com/hooks"))
		Expect(text).To(MatchRegexp(`orders-[0-9a-f]+\s+orders\s+order.created\s+Pending`))

		wide, err := exec.Command("kubectl", "--kubeconfig", path, "-n", ns, "get", "whsub", "-o", "wide").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(wide))
		Expect(string(wide)).To(ContainSubstring("Paused"))

		cat, err := exec.Command("kubectl", "--kubeconfig", path, "-n", ns, "get", "hookpost").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(cat))
		Expect(string(cat)).To(ContainSubstring("webhooksubscription.webhooks.hookpost.io/orders"))
	})
})
