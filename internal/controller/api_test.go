package controller

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
		Entry("a circuit breaker whose maxOpenFor is below openFor",
			fixtures.Subscription("", "cb-max", "https://example.com/hook", func(s *hookpostv1.WebhookSubscription) {
				s.Spec.CircuitBreaker.OpenFor = &metav1.Duration{Duration: 5 * time.Minute}
				s.Spec.CircuitBreaker.MaxOpenFor = &metav1.Duration{Duration: time.Minute}
			}),
			"spec.circuitBreaker.maxOpenFor (default 10m) must be at least spec.circuitBreaker.openFor: raise maxOpenFor or lower openFor"),
		Entry("a circuit breaker open for less than 1s",
			fixtures.Subscription("", "cb-open", "https://example.com/hook", fixtures.CircuitBreaker(3, 100*time.Millisecond, 0)),
			"spec.circuitBreaker.openFor must be between 1s and 1h"),
		Entry("a circuit breaker window over 1h",
			fixtures.Subscription("", "cb-window", "https://example.com/hook", func(s *hookpostv1.WebhookSubscription) {
				s.Spec.CircuitBreaker.Window = &metav1.Duration{Duration: 2 * time.Hour}
			}),
			"spec.circuitBreaker.window must be between 10s and 1h"),
		Entry("a timeout below 1s",
			fixtures.Subscription("", "fast", "https://example.com/hook", fixtures.Timeout(500*time.Millisecond)),
			"spec.timeout must be between 1s and 60s"),
		Entry("a timeout above 60s",
			fixtures.Subscription("", "slow", "https://example.com/hook", fixtures.Timeout(2*time.Minute)),
			"spec.timeout must be between 1s and 60s"),
		Entry("a rotation overlap below 1m",
			fixtures.Subscription("", "brief", "https://example.com/hook", fixtures.RotationOverlap(30*time.Second)),
			"spec.signing.rotationOverlap must be between 1m and 720h, such as 24h"),
		Entry("a rotation overlap above 720h",
			fixtures.Subscription("", "endless", "https://example.com/hook", fixtures.RotationOverlap(721*time.Hour)),
			"spec.signing.rotationOverlap must be between 1m and 720h, such as 24h"),
		Entry("a signature header ending in -Next",
			fixtures.Subscription("", "next", "https://example.com/hook", fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, "X-Sig-Next")),
			"spec.signing.additional[].header must not end in -Next: during a secret rotation Hookpost sends the new key's signature in <header>-Next"),
		Entry("a primary signature header ending in -Next",
			fixtures.Subscription("", "primarynext", "https://example.com/hook", fixtures.SignatureHeader("X-Webhook-Signature-Next")),
			"spec.signing.header must not end in -Next: during a secret rotation Hookpost sends the new key's signature in <header>-Next"),
		Entry("a reserved header",
			fixtures.Subscription("", "reserved", "https://example.com/hook", fixtures.Headers(map[string]string{"X-Event-Id": "x"})),
			"spec.headers must not set a header Hookpost owns"),
		Entry("a webhook-* header",
			fixtures.Subscription("", "wh", "https://example.com/hook", fixtures.Headers(map[string]string{"Webhook-Signature": "x"})),
			"spec.headers must not set a header Hookpost owns"),
		Entry("the configured signature header as a static header",
			fixtures.Subscription("", "sighdr", "https://example.com/hook", fixtures.SignatureHeader("X-Sig"), fixtures.Headers(map[string]string{"x-sig": "x"})),
			"spec.headers must not set the signature header named in spec.signing.header"),
		Entry("a CloudEvents attribute as a static header in binary mode",
			fixtures.Subscription("", "cehdr", "https://example.com/hook", fixtures.Format(hookpostv1.PayloadFormatCloudEventsBinary), fixtures.Headers(map[string]string{"CE-Type": "x"})),
			"spec.headers must not set a CloudEvents attribute Hookpost sends with payloadFormat CloudEventsBinary"),
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
		Entry("a rate limit of 0 per second",
			fixtures.Subscription("", "rate0", "https://example.com/hook", fixtures.RateLimit(0, 1)),
			"spec.rateLimit.perSecond must be from 1 to 10000 attempts per second; remove spec.rateLimit for no limit"),
		Entry("a rate limit above 10000 per second",
			fixtures.Subscription("", "ratehigh", "https://example.com/hook", fixtures.RateLimit(10001, 1)),
			"spec.rateLimit.perSecond must be from 1 to 10000 attempts per second"),
		Entry("a negative burst",
			fixtures.Subscription("", "burstneg", "https://example.com/hook", fixtures.RateLimit(10, -1)),
			"spec.rateLimit.burst must be from 1 to 10000; 1 spreads attempts evenly"),
		Entry("a burst of more than a minute's worth",
			fixtures.Subscription("", "burstbig", "https://example.com/hook", fixtures.RateLimit(1, 61)),
			"spec.rateLimit.burst must be at most 60 times spec.rateLimit.perSecond (one minute's worth); lower burst or raise perSecond"),
		Entry("spec.tls on an http URL",
			fixtures.Subscription("", "tlshttp", "http://example.com/hook", fixtures.InsecureHTTP(), fixtures.ClientCertificate("client-cert")),
			"spec.tls applies only to an https:// spec.url; remove spec.tls or use https"),
		Entry("an empty spec.tls",
			withTLS(fixtures.Subscription("", "tlsempty", "https://example.com/hook"), &hookpostv1.SubscriptionTLS{}),
			"spec.tls must set clientCertificateRef, caBundleRef or both"),
		Entry("a CA bundle from both a Secret and a ConfigMap",
			fixtures.Subscription("", "caboth", "https://example.com/hook", fixtures.CABundle(hookpostv1.CABundleRef{SecretName: "ca", ConfigMapName: "ca"})),
			"spec.tls.caBundleRef must set exactly one of secretName or configMapName"),
		Entry("a CA bundle from neither",
			fixtures.Subscription("", "canone", "https://example.com/hook", fixtures.CABundle(hookpostv1.CABundleRef{Key: "ca.pem"})),
			"spec.tls.caBundleRef must set exactly one of secretName or configMapName"),
		Entry("a signature header with StandardWebhooks",
			fixtures.Subscription("", "stdhdr", "https://example.com/hook", fixtures.Scheme(hookpostv1.SigningSchemeStandardWebhooks), fixtures.SignatureHeader("X-Sig")),
			"spec.signing.header applies only to scheme HMACSHA256Hex"),
		Entry("a header on an additional StandardWebhooks signature",
			fixtures.Subscription("", "addstdhdr", "https://example.com/hook", fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, "X-Sig")),
			"spec.signing.additional[].header applies only to scheme HMACSHA256Hex"),
		Entry("StandardWebhooks twice",
			fixtures.Subscription("", "twostd", "https://example.com/hook", fixtures.Scheme(hookpostv1.SigningSchemeStandardWebhooks),
				fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, "")),
			"spec.signing may use scheme StandardWebhooks once"),
		Entry("an additional HMAC signature in the primary's default header",
			fixtures.Subscription("", "samehdr", "https://example.com/hook", fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, "x-webhook-signature")),
			"spec.signing.additional HMACSHA256Hex entries must use a header other than spec.signing.header"),
		Entry("an additional HMAC signature in the primary's configured header",
			fixtures.Subscription("", "samehdr2", "https://example.com/hook", fixtures.SignatureHeader("X-urBackend-Signature"),
				fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, "X-URBACKEND-SIGNATURE")),
			"spec.signing.additional HMACSHA256Hex entries must use a header other than spec.signing.header"),
		Entry("two additional HMAC signatures in one header",
			fixtures.Subscription("", "twohmac", "https://example.com/hook", fixtures.Scheme(hookpostv1.SigningSchemeStandardWebhooks),
				fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, ""), fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, "X-Webhook-Signature")),
			"spec.signing.additional HMACSHA256Hex entries must each use a different header"),
		Entry("an additional HMAC signature in a header Hookpost owns",
			fixtures.Subscription("", "addowned", "https://example.com/hook", fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, "Webhook-Signature")),
			"spec.signing.additional[].header must not name a header Hookpost owns"),
		Entry("a primary signature header Hookpost owns next to additional signatures",
			fixtures.Subscription("", "primowned", "https://example.com/hook", fixtures.SignatureHeader("X-Event-Id"),
				fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, "")),
			"spec.signing.header must not name a header Hookpost owns (Content-Type, Content-Length, Host, User-Agent, X-Event-Id, X-Hookpost-*, webhook-*) when spec.signing.additional is set"),
		Entry("an additional signature header as a static header",
			fixtures.Subscription("", "addstatic", "https://example.com/hook", fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, "X-Sig"),
				fixtures.Headers(map[string]string{"x-sig": "forged"})),
			"spec.headers must not set a signature header named in spec.signing.additional"),
		Entry("an empty ordering key",
			fixtures.Subscription("", "emptykey", "https://example.com/hook", fixtures.Ordering("", hookpostv1.OrderingSkip)),
			"spec.ordering.key: Invalid value: \"\": spec.ordering.key in body should be at least 1 chars long"),
		Entry("an unknown onExhausted policy",
			fixtures.Subscription("", "badpolicy", "https://example.com/hook", fixtures.Ordering("tenant", "Retry")),
			`spec.ordering.onExhausted: Unsupported value: "Retry": supported values: "Skip", "Block"`),
		Entry("a filter expression over 4096 bytes",
			fixtures.Subscription("", "longfilter", "https://example.com/hook", fixtures.FilterExpression("true"+strings.Repeat(" ", 4096))),
			"spec.filter.expression: Too long: may not be more than 4096 bytes"),
	)

	It("accepts hex HMAC and StandardWebhooks signatures on one subscription, and existing YAML unchanged", func() {
		sub := fixtures.Subscription(ns, "migrating", "https://example.com/hook", fixtures.SignatureHeader("X-urBackend-Signature"),
			fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, ""), fixtures.AdditionalSignature(hookpostv1.SigningSchemeHMACSHA256Hex, ""))
		Expect(k8sClient.Create(ctx, sub)).To(Succeed())
		got := getSubscription(ns, "migrating")()
		Expect(got.Spec.Signing.Additional).To(Equal([]hookpostv1.AdditionalSignature{
			{Scheme: hookpostv1.SigningSchemeStandardWebhooks}, {Scheme: hookpostv1.SigningSchemeHMACSHA256Hex}}))
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "single", "https://example.com/hook", fixtures.SignatureHeader("X-urBackend-Signature")))).To(Succeed())
		Expect(getSubscription(ns, "single")().Spec.Signing.Additional).To(BeEmpty())
	})

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
		cb := got.Spec.CircuitBreaker
		Expect(cb.ConsecutiveFailures).To(HaveValue(BeEquivalentTo(10)))
		Expect(cb.FailureRatePercent).To(BeZero())
		Expect(cb.OpenFor).To(HaveValue(Equal(metav1.Duration{Duration: 30 * time.Second})))
		Expect(cb.MaxOpenFor).To(HaveValue(Equal(metav1.Duration{Duration: 10 * time.Minute})))
		Expect(cb.DrainPerSecond).To(HaveValue(BeEquivalentTo(20)))
		Expect(got.Spec.RateLimit).To(BeNil(), "no rate limit unless one is asked for")
	})

	It("defaults a rate limit's burst to 1, spreading attempts evenly", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "limited", "https://example.com/hook", fixtures.RateLimit(10, 0)))).To(Succeed())
		got := getSubscription(ns, "limited")()
		Expect(got.Spec.RateLimit).To(Equal(&hookpostv1.RateLimit{PerSecond: 10, Burst: 1}))
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
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "orders", "https://example.com/hooks", fixtures.Paused(), fixtures.RateLimit(25, 0)))).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.Delivery(ns, "orders", "evt-cols", "order.created", map[string]any{"order_id": 1}))).To(Succeed())
		Eventually(readyOf(ns, "orders")).Should(And(Not(BeNil()), HaveField("Reason", hookpostv1.ReasonPaused)))

		text := kubectl("-n", ns, "get", "whsub,whdel")
		for _, col := range []string{"URL", "READY", "DELIVERED", "FAILED", "LAST DELIVERY", "AGE", "SUBSCRIPTION", "EVENT", "PHASE", "ATTEMPTS", "CODE", "NEXT RETRY"} {
			Expect(text).To(ContainSubstring(col))
		}
		Expect(text).To(ContainSubstring("https://example.com/hooks"))
		Expect(text).To(MatchRegexp(`orders-[0-9a-f]+\s+orders\s+order.created\s+Pending`))

		wide := kubectl("-n", ns, "get", "whsub", "-o", "wide")
		Expect(wide).To(ContainSubstring("Paused"))
		// -o wide shows the rate limit (spec.rateLimit.perSecond) beside the other priority-1 columns.
		Expect(wide).To(MatchRegexp(`(?m)^NAME\s.*\sRATE\s.*$`))
		Expect(wide).To(MatchRegexp(`(?m)^orders\s.*\s25\s.*$`))

		cat := kubectl("-n", ns, "get", "hookpost")
		Expect(cat).To(ContainSubstring("webhooksubscription.webhooks.hookpost.io/orders"))
	})
})

// withTLS sets sub's spec.tls as given, even when empty (the fixtures' options never leave it empty).
func withTLS(sub *hookpostv1.WebhookSubscription, t *hookpostv1.SubscriptionTLS) *hookpostv1.WebhookSubscription {
	sub.Spec.TLS = t
	return sub
}
