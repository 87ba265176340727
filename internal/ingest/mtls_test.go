package ingest_test

import (
	"context"
	"net"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
	"github.com/hookpost/hookpost/test/harness/pki"
)

// TestFirstAttemptPresentsTheClientCertificate: ingest's first attempts to a receiver that requires mutual TLS
// present the certificate of spec.tls.clientCertificateRef and verify the receiver with the CA ConfigMap, and
// succeed without a WebhookDelivery.
func TestFirstAttemptPresentsTheClientCertificate(t *testing.T) {
	serverCA, clientCA := pki.TestCA(t, "receiver CA"), pki.TestCA(t, "client CA")
	rcv, err := harness.NewMTLSReceiver(serverCA.TestIssue(t, "receiver", net.ParseIP("127.0.0.1")), clientCA.Pool())
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	ns := namespace(t)
	ctx := context.Background()
	cert := clientCA.TestIssue(t, "tenant-a")
	for _, o := range []client.Object{fixtures.TLSSecret(ns, "client-cert", cert.CertPEM, cert.KeyPEM), fixtures.CABundleConfigMap(ns, "receiver-ca", serverCA.PEM)} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	sub := fixtures.Subscription(ns, "mtls", rcv.URL+"/mtls", fixtures.Events("order.*"),
		fixtures.ClientCertificate("client-cert"), fixtures.CABundle(hookpostv1.CABundleRef{ConfigMapName: "receiver-ca"}))
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour}, src)
	readySubscription(t, sub)

	insert(t, table, row{"order.created", "", "", `{"order_id":1}`}, row{"order.created", "", "", `{"order_id":2}`})
	waitFor(t, "2 requests", func() bool { return len(rcv.Requests("/mtls")) >= 2 })
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	for _, r := range rcv.Requests("/mtls") {
		if r.ClientCN != "tenant-a" || r.Header.Get(delivery.HeaderAttempt) != "1" {
			t.Errorf("request with client certificate %q, attempt %s; want tenant-a, 1", r.ClientCN, r.Header.Get(delivery.HeaderAttempt))
		}
	}
	if got := deliveries(t, ns); len(got) != 0 {
		t.Fatalf("first attempts over mutual TLS failed and became deliveries: %v", got)
	}
}
