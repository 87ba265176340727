package delivery

import (
	"testing"

	"github.com/hookpost/hookpost/test/harness/pki"
)

// BenchmarkClientForTLS is what finding a subscription's connection pool by its TLS material costs each attempt:
// hashing the PEM bytes and a map lookup (the material is parsed only when its pool is made). Compare with
// /shared, a request without material.
func BenchmarkClientForTLS(b *testing.B) {
	ca := pki.TestCA(b, "bench CA")
	c := ca.TestIssue(b, "bench client")
	s := NewSender(SenderOptions{})
	withTLS := Request{TLS: ClientTLS{CertPEM: c.CertPEM, KeyPEM: c.KeyPEM, CAPEM: ca.PEM}}
	for _, bc := range []struct {
		name string
		req  Request
	}{
		{name: "shared", req: Request{}},
		{name: "material", req: withTLS},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.clientFor(bc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
