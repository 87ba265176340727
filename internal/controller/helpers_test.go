package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/harness"
)

var (
	tlsReceiver *harness.Receiver
	nsCounter   atomic.Int64
)

// tlsReceiverConfig starts the suite's HTTPS receiver and returns a TLS config that trusts it, the way an
// operator trusts a receiver's CA.
func tlsReceiverConfig() *tls.Config {
	tlsReceiver = harness.NewTLSReceiver()
	pool := x509.NewCertPool()
	pool.AddCert(tlsReceiver.Certificate())
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func closeTLSReceiver() {
	if tlsReceiver != nil {
		tlsReceiver.Close()
	}
}

// newNamespace creates a namespace for one spec.
// newNamespace creates a namespace granted every tenant (the suite runs with tenant isolation on, as the operator
// does by default) and showing answers from internal addresses (the receivers listen on loopback).
func newNamespace() string {
	return newNamespaceWith(map[string]string{
		hookpostv1.AnnotationTenants:               "*",
		hookpostv1.AnnotationShowInternalResponses: "true",
	})
}

// newNamespaceWith creates a namespace with exactly these annotations, as a cluster admin set them.
func newNamespaceWith(annotations map[string]string) string {
	name := fmt.Sprintf("t%d", nsCounter.Add(1))
	Expect(k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}})).To(Succeed())
	return name
}

// newReceiver starts a plain HTTP receiver on 127.0.0.1 for one spec.
func newReceiver() *harness.Receiver {
	r := harness.NewReceiver()
	DeferCleanup(r.Close)
	return r
}

func getDelivery(ns, name string) func() *hookpostv1.WebhookDelivery {
	return func() *hookpostv1.WebhookDelivery {
		d := &hookpostv1.WebhookDelivery{}
		Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
		return d
	}
}

func getSubscription(ns, name string) func() *hookpostv1.WebhookSubscription {
	return func() *hookpostv1.WebhookSubscription {
		s := &hookpostv1.WebhookSubscription{}
		Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s)).To(Succeed())
		return s
	}
}

// poke makes the controllers look at a delivery again, as the workqueue's timer would after stepping the fake
// clock (the workqueue itself runs on real time).
func poke(d *hookpostv1.WebhookDelivery) {
	patch := client.MergeFrom(d.DeepCopy())
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations["test.hookpost.io/poke"] = fmt.Sprint(time.Now().UnixNano())
	Expect(k8sClient.Patch(context.Background(), d, patch)).To(Succeed())
}

// pokeSubscription makes the subscription controller look at a subscription again, as its RequeueAfter timer would
// after stepping the fake clock.
func pokeSubscription(ns, name string) {
	sub := getSubscription(ns, name)()
	patch := client.MergeFrom(sub.DeepCopy())
	if sub.Annotations == nil {
		sub.Annotations = map[string]string{}
	}
	sub.Annotations["test.hookpost.io/poke"] = fmt.Sprint(time.Now().UnixNano())
	Expect(k8sClient.Patch(context.Background(), sub, patch)).To(Succeed())
}

func signingKeysOf(ns, name string) func() []hookpostv1.SigningKey {
	return func() []hookpostv1.SigningKey { return getSubscription(ns, name)().Status.SigningKeys }
}

// stepAndPoke advances the fake clock and wakes the delivery.
func stepAndPoke(ns, name string, by time.Duration) {
	fakeClock.Step(by)
	poke(getDelivery(ns, name)())
}

func phaseOf(ns, name string) func() hookpostv1.DeliveryPhase {
	return func() hookpostv1.DeliveryPhase { return getDelivery(ns, name)().Status.Phase }
}

func attemptsOf(ns, name string) func() int32 {
	return func() int32 { return getDelivery(ns, name)().Status.Attempts }
}

func requestsTo(r *harness.Receiver, path string) func() int {
	return func() int { return len(r.Requests(path)) }
}

// eventReasons returns a poll of the reasons of every Event recorded in ns.
func eventReasons(ns string) func() []string {
	return func() []string {
		list := &corev1.EventList{}
		Expect(k8sClient.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, e := range list.Items {
			reasons = append(reasons, e.Reason)
		}
		return reasons
	}
}

// deliveryStates returns a poll counting the named deliveries of ns by "phase/attempts/reason" (the reason of their
// Delivered condition), for specs that hold deliveries back and count what each became.
func deliveryStates(ns string, names []string) func() map[string]int {
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
