package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
	"github.com/hookpost/hookpost/test/harness/pki"
)

// TestMutualTLSWithARotatedCertificate runs the operator binary against a receiver that requires a client
// certificate from a private CA and serves one the system roots do not trust: the subscription's spec.tls
// (a kubernetes.io/tls Secret, a CA bundle ConfigMap) delivers, and after the Secret is rotated the same operator
// process presents the new certificate.
func TestMutualTLSWithARotatedCertificate(t *testing.T) {
	tb := newTestbed(t)
	serverCA, clientCA := pki.TestCA(t, "receiver CA"), pki.TestCA(t, "client CA")
	rcv, err := harness.NewMTLSReceiver(serverCA.TestIssue(t, "receiver", net.ParseIP("127.0.0.1")), clientCA.Pool())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	first := clientCA.TestIssue(t, "tenant-2025")
	secret := fixtures.TLSSecret(tb.ns, "client-cert", first.CertPEM, first.KeyPEM)
	for _, o := range []client.Object{secret, fixtures.CABundleConfigMap(tb.ns, "receiver-ca", serverCA.PEM),
		fixtures.Subscription(tb.ns, "partner", rcv.URL+"/partner", fixtures.ClientCertificate("client-cert"),
			fixtures.CABundle(hookpostv1.CABundleRef{ConfigMapName: "receiver-ca"}))} {
		if err := tb.c.Create(tb.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	tb.startOperator("op")
	waitUntil(t, readyTimeout, "the subscription Ready", func() (bool, string) {
		sub := &hookpostv1.WebhookSubscription{}
		if err := tb.c.Get(tb.ctx, client.ObjectKey{Namespace: tb.ns, Name: "partner"}, sub); err != nil {
			return false, err.Error()
		}
		return meta.IsStatusConditionTrue(sub.Status.Conditions, hookpostv1.ConditionReady), fmt.Sprint(sub.Status.Conditions)
	})
	key, err := controller.LoadSealKey(tb.ctx, tb.c, "default", controller.DefaultSealSecretName)
	if err != nil {
		t.Fatal(err)
	}
	sealer := controller.NewSealer(key)
	deliver := func(eventID, wantCN string) {
		t.Helper()
		d := fixtures.Delivery(tb.ns, "partner", eventID, "order.created", map[string]any{"order_id": 1}, fixtures.SealedBy(sealer))
		if err := tb.c.Create(tb.ctx, d); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, time.Minute, eventID+" Succeeded", func() (bool, string) {
			got := &hookpostv1.WebhookDelivery{}
			if err := tb.c.Get(tb.ctx, client.ObjectKeyFromObject(d), got); err != nil {
				return false, err.Error()
			}
			last := ""
			if got.Status.LastAttempt != nil {
				last = got.Status.LastAttempt.Error
			}
			return got.Status.Phase == hookpostv1.DeliverySucceeded, string(got.Status.Phase) + " " + last
		})
		reqs := rcv.Requests("/partner")
		if got := reqs[len(reqs)-1].ClientCN; got != wantCN {
			t.Fatalf("%s: receiver saw client certificate %q, want %q", eventID, got, wantCN)
		}
	}
	deliver("evt-before", "tenant-2025")

	rotated := clientCA.TestIssue(t, "tenant-2026")
	if err := tb.c.Get(tb.ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
		t.Fatal(err)
	}
	secret.Data = map[string][]byte{corev1.TLSCertKey: rotated.CertPEM, corev1.TLSPrivateKeyKey: rotated.KeyPEM}
	if err := tb.c.Update(tb.ctx, secret); err != nil {
		t.Fatal(err)
	}
	// The operator's Secret watch brings the change within milliseconds; the margin keeps the next delivery from
	// being attempted before it, on a loaded machine.
	time.Sleep(time.Second)
	deliver("evt-after", "tenant-2026")
}
