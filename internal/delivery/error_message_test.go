package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestErrorMessage(t *testing.T) {
	wrap := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://user:s3cret@receiver.example/hook", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	live := context.Background()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"timeout", &url.Error{Op: "Post", URL: "u", Err: context.DeadlineExceeded}, "timeout after 10s"},
		{"connection refused", wrap(syscall.ECONNREFUSED), "connection refused"},
		{"connection reset", wrap(syscall.ECONNRESET), "connection reset"},
		{"no such host", wrap(&net.DNSError{Err: "no such host", Name: "receiver.example", IsNotFound: true}), "DNS: no such host receiver.example"},
		{"DNS server failure", wrap(&net.DNSError{Err: "server misbehaving", Name: "receiver.example"}), "DNS: lookup of receiver.example failed: server misbehaving"},
		{"unknown authority", wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), "TLS: certificate signed by unknown authority"},
		{"plain http behind https URL", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), "TLS: the receiver did not answer with TLS (is it a plain http:// endpoint?)"},
		{"receiver requires a client certificate", wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}),
			"TLS: the receiver requires a client certificate and was sent none (alert: certificate required); name a kubernetes.io/tls Secret in spec.tls.clientCertificateRef"},
		{"receiver rejects the client certificate", wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")}),
			"TLS: the receiver rejected the client certificate of spec.tls.clientCertificateRef (alert: unknown certificate authority); use one signed by a CA the receiver trusts"},
		{"another alert", wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}), "TLS: receiver sent alert: protocol version not supported"},
		{"closed early", &url.Error{Op: "Post", URL: "u", Err: io.EOF}, "connection closed by the receiver before a response"},
		{"other error drops the URL", &url.Error{Op: "Post", URL: "https://user:s3cret@receiver.example/hook", Err: errors.New("something odd")}, "something odd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorMessage(tt.err, live, 10*time.Second)
			if got != tt.want {
				t.Errorf("message = %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "s3cret") {
				t.Errorf("message %q leaks the URL's password", got)
			}
		})
	}

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if got := errorMessage(&url.Error{Op: "Post", URL: "u", Err: context.Canceled}, canceled, time.Second); got != "attempt canceled: context canceled" {
		t.Errorf("canceled message = %q", got)
	}
}
