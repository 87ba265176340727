package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ClientTLS is one subscription's TLS material, as the PEM bytes its Secrets and ConfigMap hold: a client
// certificate for receivers that require mutual TLS, and a CA bundle that verifies the receiver instead of the
// operator's trust roots. The zero value uses neither. It is not sent; the Sender keeps one connection pool per
// distinct material (see Sender.clientFor), so a connection that presented one tenant's certificate never carries
// another's request, and changed bytes (a rotated Secret) take effect on the next attempt.
type ClientTLS struct {
	// CertPEM and KeyPEM are the client certificate (chain) and its private key; both empty for none.
	CertPEM, KeyPEM []byte
	// CAPEM are the certificates trusted to sign the receiver's; empty keeps the operator's roots.
	CAPEM []byte
}

// ErrTLSMaterial marks a ClientTLS whose bytes cannot be used (not PEM, or a key that does not match). An attempt
// that meets it is classified ClassTLS and retried: the Secret can be fixed meanwhile.
var ErrTLSMaterial = errors.New("unusable TLS material")

// IsZero reports whether c carries no material, so the operator's shared connection pool serves it.
func (c ClientTLS) IsZero() bool {
	return len(c.CertPEM) == 0 && len(c.KeyPEM) == 0 && len(c.CAPEM) == 0
}

// poolKey names the connection pool of the material under reach (a Reach.key()): equal bytes share a pool,
// different bytes never do. It holds the bytes themselves, length-prefixed, rather than a hash of them: exact, so
// no crafted material can collide with another tenant's, and cheaper per attempt than hashing
// (BenchmarkClientForTLS).
func (c ClientTLS) poolKey(reach string) string {
	var b strings.Builder
	b.Grow(len(reach) + 1 + 3*8 + len(c.CertPEM) + len(c.KeyPEM) + len(c.CAPEM))
	b.WriteString(reach)
	b.WriteByte('|')
	var n [8]byte
	for _, part := range [][]byte{c.CertPEM, c.KeyPEM, c.CAPEM} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		b.Write(n[:])
		b.Write(part)
	}
	return b.String()
}

// ParseClientCertificate reads a PEM certificate (chain) and its private key, as a kubernetes.io/tls Secret's
// tls.crt and tls.key hold them. Errors wrap ErrTLSMaterial and never quote the key.
func ParseClientCertificate(certPEM, keyPEM []byte) (tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: client certificate: %w", ErrTLSMaterial, err)
	}
	return cert, nil
}

// ParseCABundle reads PEM certificates into a pool; a bundle without one is an error, not an empty trust store
// that would refuse every receiver.
func ParseCABundle(caPEM []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: CA bundle: no PEM certificate found", ErrTLSMaterial)
	}
	return pool, nil
}

// Config returns base (the operator's TLS settings) with c applied: the client certificate offered when a
// receiver asks for one, and the CA bundle as the only roots.
func (c ClientTLS) Config(base *tls.Config) (*tls.Config, error) {
	cfg := base.Clone()
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if len(c.CertPEM) > 0 || len(c.KeyPEM) > 0 {
		cert, err := ParseClientCertificate(c.CertPEM, c.KeyPEM)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if len(c.CAPEM) > 0 {
		pool, err := ParseCABundle(c.CAPEM)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
