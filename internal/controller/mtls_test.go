package controller

import (
	"context"
	"net"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
	"github.com/hookpost/hookpost/test/harness/pki"
)

var _ = Describe("Mutual TLS and custom CAs (spec.tls)", func() {
	ctx := context.Background()
	var (
		ns                 string
		rcv                *harness.Receiver
		serverCA, clientCA *pki.CA
	)
	// issue returns a client certificate for cn from the CA the receiver trusts.
	issue := func(cn string) pki.Issued {
		c, err := clientCA.Issue(cn)
		Expect(err).NotTo(HaveOccurred())
		return c
	}
	newCA := func(cn string) *pki.CA {
		ca, err := pki.NewCA(cn)
		Expect(err).NotTo(HaveOccurred())
		return ca
	}
	BeforeEach(func() {
		ns = newNamespace()
		serverCA, clientCA = newCA("receiver CA"), newCA("client CA")
		serving, err := serverCA.Issue("receiver", net.ParseIP("127.0.0.1"))
		Expect(err).NotTo(HaveOccurred())
		// A receiver demanding a client certificate from clientCA, serving one the operator's roots do not trust.
		rcv, err = harness.NewMTLSReceiver(serving, clientCA.Pool())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(rcv.Close)
	})

	subscribe := func(name string, opts ...fixtures.SubscriptionOption) {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, name, rcv.URL+"/"+name, opts...))).To(Succeed())
		Eventually(readyOf(ns, name)).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))
	}
	deliver := func(sub, eventID string) string {
		d := fixtures.Delivery(ns, sub, eventID, "order.created", map[string]any{"order_id": 1})
		testSealer.Seal(d)
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		return d.Name
	}
	lastError := func(name string) func() string {
		return func() string {
			if a := getDelivery(ns, name)().Status.LastAttempt; a != nil {
				return a.Error
			}
			return ""
		}
	}
	clientCNs := func(path string) func() []string {
		return func() []string {
			var cns []string
			for _, r := range rcv.Requests(path) {
				cns = append(cns, r.ClientCN)
			}
			return cns
		}
	}
	caConfigMap := hookpostv1.CABundleRef{ConfigMapName: "receiver-ca"}

	It("delivers with the client certificate Secret and the CA ConfigMap, and a rotated certificate from the next attempt on, without a restart", func() {
		first := issue("tenant-a")
		Expect(k8sClient.Create(ctx, fixtures.TLSSecret(ns, "client-cert", first.CertPEM, first.KeyPEM))).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.CABundleConfigMap(ns, "receiver-ca", serverCA.PEM))).To(Succeed())
		subscribe("orders", fixtures.ClientCertificate("client-cert"), fixtures.CABundle(caConfigMap))
		Expect(readyOf(ns, "orders")().Message).To(ContainSubstring("client certificate from Secret client-cert; receiver verified with the CA bundle in ConfigMap receiver-ca, key ca.crt"))

		Eventually(phaseOf(ns, deliver("orders", "evt-1"))).Should(Equal(hookpostv1.DeliverySucceeded))
		Expect(clientCNs("/orders")()).To(Equal([]string{"tenant-a"}))

		rotated := issue("tenant-a-rotated")
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "client-cert"}, s)).To(Succeed())
		s.Data = map[string][]byte{corev1.TLSCertKey: rotated.CertPEM, corev1.TLSPrivateKeyKey: rotated.KeyPEM}
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		// The manager's cache sees the change (the attempt paths read through it), then the next delivery goes.
		Eventually(func() []byte {
			got, err := testSecrets.Get(ctx, types.NamespacedName{Namespace: ns, Name: "client-cert"})
			Expect(err).NotTo(HaveOccurred())
			return got.Data[corev1.TLSCertKey]
		}).Should(Equal(rotated.CertPEM))
		Eventually(phaseOf(ns, deliver("orders", "evt-2"))).Should(Equal(hookpostv1.DeliverySucceeded))
		Expect(clientCNs("/orders")()).To(Equal([]string{"tenant-a", "tenant-a-rotated"}))
	})

	It("without a client certificate, the receiver refuses, the attempt says TLS and is retried on the schedule; adding one delivers", func() {
		Expect(k8sClient.Create(ctx, fixtures.SigningSecret(ns, "receiver-ca", map[string]string{"ca.crt": string(serverCA.PEM)}))).To(Succeed())
		subscribe("nocert", fixtures.CABundle(hookpostv1.CABundleRef{SecretName: "receiver-ca"}), fixtures.Schedule(time.Minute))
		name := deliver("nocert", "evt-nocert")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryRetrying))
		Expect(lastError(name)()).To(HavePrefix("TLS: the receiver requires a client certificate and was sent none"))
		Expect(lastError(name)()).To(ContainSubstring("spec.tls.clientCertificateRef"))
		Expect(rcv.Requests("")).To(BeEmpty())

		cert := issue("tenant-b")
		Expect(k8sClient.Create(ctx, fixtures.TLSSecret(ns, "client-cert", cert.CertPEM, cert.KeyPEM))).To(Succeed())
		sub := getSubscription(ns, "nocert")()
		patch := client.MergeFrom(sub.DeepCopy())
		sub.Spec.TLS.ClientCertificateRef = &hookpostv1.LocalSecretRef{Name: "client-cert"}
		Expect(k8sClient.Patch(ctx, sub, patch)).To(Succeed())
		Eventually(func() bool {
			s := getSubscription(ns, "nocert")()
			r := readyOf(ns, "nocert")()
			return s.Status.ObservedGeneration == s.Generation && r != nil && r.Status == metav1.ConditionTrue
		}).Should(BeTrue())
		stepAndPoke(ns, name, time.Minute)
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliverySucceeded))
		Expect(clientCNs("/nocert")()).To(Equal([]string{"tenant-b"}))
	})

	It("with a CA bundle that did not sign the receiver's certificate, fails with certificate signed by unknown authority", func() {
		cert := issue("tenant-c")
		Expect(k8sClient.Create(ctx, fixtures.TLSSecret(ns, "client-cert", cert.CertPEM, cert.KeyPEM))).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.CABundleConfigMap(ns, "receiver-ca", newCA("another CA").PEM))).To(Succeed())
		subscribe("wrongca", fixtures.ClientCertificate("client-cert"), fixtures.CABundle(caConfigMap))
		name := deliver("wrongca", "evt-wrongca")
		Eventually(phaseOf(ns, name)).Should(Equal(hookpostv1.DeliveryRetrying))
		Expect(lastError(name)()).To(Equal("TLS: certificate signed by unknown authority"))
		Expect(rcv.Requests("")).To(BeEmpty())
	})

	It("is not Ready, naming the field and the fix, until the CA ConfigMap exists, is labelled and holds PEM", func() {
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "ca", rcv.URL+"/ca", fixtures.CABundle(caConfigMap)))).To(Succeed())
		Eventually(readyOf(ns, "ca")).Should(And(Not(BeNil()), HaveField("Reason", hookpostv1.ReasonTLSNotFound)))
		Expect(readyOf(ns, "ca")().Message).To(ContainSubstring(`ConfigMap "receiver-ca" named in spec.tls.caBundleRef.configMapName does not exist`))

		cm := fixtures.CABundleConfigMap(ns, "receiver-ca", []byte("not a certificate"))
		cm.Labels = nil
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		// The cache does not show an unlabelled ConfigMap, so nothing wakes the subscription: poke it.
		pokeSubscription(ns, "ca")
		Eventually(readyOf(ns, "ca")).Should(HaveField("Reason", hookpostv1.ReasonTLSNotLabeled))
		Expect(readyOf(ns, "ca")().Message).To(ContainSubstring("kubectl label configmap receiver-ca -n " + ns + " webhooks.hookpost.io/ca-bundle=true"))

		cm.Labels = map[string]string{hookpostv1.LabelCABundle: "true"}
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		Eventually(readyOf(ns, "ca")).Should(HaveField("Reason", hookpostv1.ReasonTLSInvalid))
		Expect(readyOf(ns, "ca")().Message).To(ContainSubstring("spec.tls.caBundleRef: unusable TLS material: CA bundle: no PEM certificate found"))

		cm.Data = map[string]string{hookpostv1.DefaultCABundleKey: string(serverCA.PEM)}
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		Eventually(readyOf(ns, "ca")).Should(HaveField("Status", metav1.ConditionTrue))
	})

	It("is not Ready when the client certificate Secret's key does not match its certificate", func() {
		one, other := issue("one"), issue("other")
		Expect(k8sClient.Create(ctx, fixtures.TLSSecret(ns, "client-cert", one.CertPEM, other.KeyPEM))).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.Subscription(ns, "mismatch", rcv.URL+"/mismatch", fixtures.ClientCertificate("client-cert")))).To(Succeed())
		Eventually(readyOf(ns, "mismatch")).Should(And(Not(BeNil()), HaveField("Reason", hookpostv1.ReasonTLSInvalid)))
		Expect(readyOf(ns, "mismatch")().Message).To(ContainSubstring(`Secret "client-cert" named in spec.tls.clientCertificateRef: tls.crt and tls.key are not a PEM certificate and its private key`))
		Expect(readyOf(ns, "mismatch")().Message).NotTo(ContainSubstring("PRIVATE KEY"))
	})
})
