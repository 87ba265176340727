package delivery_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/test/harness/pki"
)

// mtlsWorld is a receiver that requires mutual TLS, the CA that signed its certificate, and the CA its client
// certificates must come from.
type mtlsWorld struct {
	srv                  *httptest.Server
	serverCA, clientCA   *pki.CA
	mu                   sync.Mutex
	clientCNs            []string
	connectionsByAddress map[string]string // client address -> the CN its connection presented
}

func newMTLSWorld(t *testing.T) *mtlsWorld {
	t.Helper()
	w := &mtlsWorld{serverCA: pki.TestCA(t, "receiver CA"), clientCA: pki.TestCA(t, "client CA"), connectionsByAddress: map[string]string{}}
	serving := w.serverCA.TestIssue(t, "receiver", net.ParseIP("127.0.0.1"))
	cert, err := serving.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	w.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		cn := r.TLS.PeerCertificates[0].Subject.CommonName
		w.mu.Lock()
		w.clientCNs = append(w.clientCNs, cn)
		if prev, ok := w.connectionsByAddress[r.RemoteAddr]; ok && prev != cn {
			t.Errorf("connection %s presented %s and now carries a request of %s", r.RemoteAddr, prev, cn)
		}
		w.connectionsByAddress[r.RemoteAddr] = cn
		w.mu.Unlock()
	}))
	w.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: w.clientCA.Pool(), MinVersion: tls.VersionTLS12}
	w.srv.StartTLS()
	t.Cleanup(w.srv.Close)
	return w
}

func (w *mtlsWorld) lastCN() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.clientCNs) == 0 {
		return ""
	}
	return w.clientCNs[len(w.clientCNs)-1]
}

// client returns the material of a subscription whose client certificate is named cn and that trusts the
// receiver's CA.
func (w *mtlsWorld) client(t *testing.T, cn string) delivery.ClientTLS {
	t.Helper()
	c := w.clientCA.TestIssue(t, cn)
	return delivery.ClientTLS{CertPEM: c.CertPEM, KeyPEM: c.KeyPEM, CAPEM: w.serverCA.PEM}
}

func sendTLS(s *delivery.Sender, url string, material delivery.ClientTLS) delivery.Outcome {
	r := post(url)
	r.TLS = material
	return s.Send(context.Background(), r, 5*time.Second, false, testNow)
}

func TestClientTLSConfig(t *testing.T) {
	ca := pki.TestCA(t, "ca")
	one, other := ca.TestIssue(t, "one"), ca.TestIssue(t, "other")
	base := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "kept"}
	tests := []struct {
		name      string
		material  delivery.ClientTLS
		wantErr   string
		wantCerts int
		wantRoots bool
	}{
		{name: "nothing keeps the operator's settings", material: delivery.ClientTLS{}},
		{name: "a client certificate", material: delivery.ClientTLS{CertPEM: one.CertPEM, KeyPEM: one.KeyPEM}, wantCerts: 1},
		{name: "a CA bundle", material: delivery.ClientTLS{CAPEM: ca.PEM}, wantRoots: true},
		{name: "both", material: delivery.ClientTLS{CertPEM: one.CertPEM, KeyPEM: one.KeyPEM, CAPEM: ca.PEM}, wantCerts: 1, wantRoots: true},
		{name: "a key of another certificate", material: delivery.ClientTLS{CertPEM: one.CertPEM, KeyPEM: other.KeyPEM}, wantErr: "client certificate: tls: private key does not match public key"},
		{name: "a certificate without its key", material: delivery.ClientTLS{CertPEM: one.CertPEM}, wantErr: "client certificate"},
		{name: "a CA bundle that is not PEM", material: delivery.ClientTLS{CAPEM: []byte("not pem")}, wantErr: "CA bundle: no PEM certificate found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.material.Config(base)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, delivery.ErrTLSMaterial) {
					t.Fatalf("err = %v, want ErrTLSMaterial saying %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Fatalf("the error quotes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Certificates) != tc.wantCerts || (cfg.RootCAs != nil) != tc.wantRoots {
				t.Fatalf("certificates %d, roots %v; want %d, %v", len(cfg.Certificates), cfg.RootCAs != nil, tc.wantCerts, tc.wantRoots)
			}
			if cfg.MinVersion != tls.VersionTLS13 || cfg.ServerName != "kept" || base.Certificates != nil || base.RootCAs != nil {
				t.Fatal("the operator's settings were not kept, or were modified")
			}
		})
	}
}

func TestSendMutualTLS(t *testing.T) {
	w := newMTLSWorld(t)
	s := newSender(delivery.SenderOptions{})

	t.Run("the client certificate is presented and the CA bundle verifies the receiver", func(t *testing.T) {
		if out := sendTLS(s, w.srv.URL, w.client(t, "tenant-a")); out.Class != delivery.ClassSucceeded {
			t.Fatalf("outcome %+v", out)
		}
		if got := w.lastCN(); got != "tenant-a" {
			t.Fatalf("receiver saw client certificate %q, want tenant-a", got)
		}
	})
	t.Run("without a client certificate the receiver refuses and the error says TLS", func(t *testing.T) {
		out := sendTLS(s, w.srv.URL, delivery.ClientTLS{CAPEM: w.serverCA.PEM})
		if out.Class != delivery.ClassTLS || !strings.HasPrefix(out.Error, "TLS: ") || !strings.Contains(out.Error, "certificate") {
			t.Fatalf("outcome %+v, want class TLS with a TLS message about the certificate", out)
		}
	})
	t.Run("a CA bundle that did not sign the receiver's certificate", func(t *testing.T) {
		material := w.client(t, "tenant-a")
		material.CAPEM = pki.TestCA(t, "someone else's CA").PEM
		out := sendTLS(s, w.srv.URL, material)
		if out.Class != delivery.ClassTLS || !strings.Contains(out.Error, "TLS: ") || !strings.Contains(out.Error, "certificate signed by unknown authority") {
			t.Fatalf("outcome %+v, want class TLS, certificate signed by unknown authority", out)
		}
	})
	t.Run("unusable material fails the attempt with class TLS, naming spec.tls", func(t *testing.T) {
		out := sendTLS(s, w.srv.URL, delivery.ClientTLS{CAPEM: []byte("garbage")})
		if out.Class != delivery.ClassTLS || !strings.Contains(out.Error, "CA bundle") || !strings.Contains(out.Error, "spec.tls") {
			t.Fatalf("outcome %+v", out)
		}
	})
	t.Run("a rotated certificate is used from the next attempt on", func(t *testing.T) {
		for _, cn := range []string{"tenant-a-2025", "tenant-a-2026"} {
			if out := sendTLS(s, w.srv.URL, w.client(t, cn)); out.Class != delivery.ClassSucceeded {
				t.Fatalf("outcome %+v", out)
			}
			if got := w.lastCN(); got != cn {
				t.Fatalf("receiver saw %q, want %q", got, cn)
			}
		}
	})
	t.Run("tenants never share a connection", func(t *testing.T) {
		// Interleaved and concurrent: the handler fails the test when a connection carries two CNs.
		a, b := w.client(t, "tenant-a"), w.client(t, "tenant-b")
		var wg sync.WaitGroup
		for i := range 20 {
			material := a
			if i%2 == 1 {
				material = b
			}
			wg.Go(func() {
				if out := sendTLS(s, w.srv.URL, material); out.Class != delivery.ClassSucceeded {
					t.Errorf("outcome %+v", out)
				}
			})
		}
		wg.Wait()
	})
}

func TestSenderDropsUnusedTLSClients(t *testing.T) {
	w := newMTLSWorld(t)
	s := newSender(delivery.SenderOptions{})
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.SetNow(func() time.Time { return now })

	old, current := w.client(t, "before-rotation"), w.client(t, "after-rotation")
	for _, m := range []delivery.ClientTLS{old, current} {
		if out := sendTLS(s, w.srv.URL, m); out.Class != delivery.ClassSucceeded {
			t.Fatalf("outcome %+v", out)
		}
	}
	if got := s.PooledClients(); got != 2 {
		t.Fatalf("%d clients, want one per material (2)", got)
	}
	// The rotated-away certificate is not used again; the current one is, every few minutes.
	for range 4 {
		now = now.Add(4 * time.Minute)
		if out := sendTLS(s, w.srv.URL, current); out.Class != delivery.ClassSucceeded {
			t.Fatalf("outcome %+v", out)
		}
	}
	if out := sendTLS(s, w.srv.URL, w.client(t, "new-tenant")); out.Class != delivery.ClassSucceeded {
		t.Fatalf("outcome %+v", out)
	}
	if got := s.PooledClients(); got != 2 {
		t.Fatalf("%d clients, want 2: the current and the new tenant's; the unused one dropped", got)
	}
	// Requests without material use the shared client and add none.
	if out := s.Send(context.Background(), post(w.srv.URL), 5*time.Second, false, testNow); out.Class != delivery.ClassTLS {
		t.Fatalf("outcome %+v, want TLS (the operator's roots do not trust this receiver)", out)
	}
	if got := s.PooledClients(); got != 2 {
		t.Fatalf("%d clients after a request without material, want 2", got)
	}
}
