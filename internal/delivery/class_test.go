package delivery_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/netguard"
)

// netOpErr wraps err the way a failed dial reaches the sender.
func netOpErr(err error) error {
	return &url.Error{Op: "Post", URL: "https://receiver.example/hook", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
}

func TestClassify(t *testing.T) {
	refused := &netguard.RefusedError{
		Address:   netip.MustParseAddr("169.254.169.254"),
		Range:     netip.MustParsePrefix("169.254.0.0/16"),
		RangeName: "link-local",
	}
	tests := []struct {
		name       string
		status     int
		err        error
		retryOn4xx bool
		want       delivery.Class
	}{
		{name: "200", status: 200, want: delivery.ClassSucceeded},
		{name: "201", status: 201, want: delivery.ClassSucceeded},
		{name: "202", status: 202, want: delivery.ClassSucceeded},
		{name: "204", status: 204, want: delivery.ClassSucceeded},
		{name: "299", status: 299, want: delivery.ClassSucceeded},
		{name: "301 not followed", status: 301, want: delivery.ClassRetry},
		{name: "302 not followed", status: 302, want: delivery.ClassRetry},
		{name: "304", status: 304, want: delivery.ClassRetry},
		{name: "307 not followed", status: 307, want: delivery.ClassRetry},
		{name: "308 not followed", status: 308, want: delivery.ClassRetry},
		{name: "400", status: 400, want: delivery.ClassPermanent},
		{name: "401", status: 401, want: delivery.ClassPermanent},
		{name: "403", status: 403, want: delivery.ClassPermanent},
		{name: "404", status: 404, want: delivery.ClassPermanent},
		{name: "408 request timeout retries", status: 408, want: delivery.ClassRetry},
		{name: "409", status: 409, want: delivery.ClassPermanent},
		{name: "410 gone", status: 410, want: delivery.ClassGone},
		{name: "413", status: 413, want: delivery.ClassPermanent},
		{name: "422", status: 422, want: delivery.ClassPermanent},
		{name: "429 rate limited retries", status: 429, want: delivery.ClassRetry},
		{name: "499", status: 499, want: delivery.ClassPermanent},
		{name: "400 with retryOn4xx", status: 400, retryOn4xx: true, want: delivery.ClassRetry},
		{name: "404 with retryOn4xx", status: 404, retryOn4xx: true, want: delivery.ClassRetry},
		{name: "408 with retryOn4xx", status: 408, retryOn4xx: true, want: delivery.ClassRetry},
		{name: "410 with retryOn4xx stays gone", status: 410, retryOn4xx: true, want: delivery.ClassGone},
		{name: "429 with retryOn4xx", status: 429, retryOn4xx: true, want: delivery.ClassRetry},
		{name: "200 with retryOn4xx", status: 200, retryOn4xx: true, want: delivery.ClassSucceeded},
		{name: "500", status: 500, want: delivery.ClassRetry},
		{name: "501", status: 501, want: delivery.ClassRetry},
		{name: "502", status: 502, want: delivery.ClassRetry},
		{name: "503", status: 503, want: delivery.ClassRetry},
		{name: "504", status: 504, want: delivery.ClassRetry},
		{name: "599", status: 599, want: delivery.ClassRetry},
		{name: "1xx final status", status: 100, want: delivery.ClassRetry},
		{name: "status outside HTTP", status: 600, want: delivery.ClassRetry},
		{name: "no response and no error", status: 0, want: delivery.ClassRetry},
		{name: "timeout", err: &url.Error{Op: "Post", URL: "u", Err: context.DeadlineExceeded}, want: delivery.ClassRetry},
		{name: "dial timeout", err: netOpErr(os.ErrDeadlineExceeded), want: delivery.ClassRetry},
		{name: "connection refused", err: netOpErr(syscall.ECONNREFUSED), want: delivery.ClassRetry},
		{name: "connection reset", err: netOpErr(syscall.ECONNRESET), want: delivery.ClassRetry},
		{name: "DNS failure", err: netOpErr(&net.DNSError{Err: "no such host", Name: "receiver.example", IsNotFound: true}), want: delivery.ClassRetry},
		{name: "TLS unknown authority", err: netOpErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), want: delivery.ClassTLS},
		{name: "TLS hostname mismatch", err: netOpErr(x509.HostnameError{Host: "receiver.example", Certificate: &x509.Certificate{}}), want: delivery.ClassTLS},
		{name: "TLS alert from the receiver", err: netOpErr(&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}), want: delivery.ClassTLS},
		{name: "TLS material unusable", err: fmt.Errorf("%w: CA bundle: no PEM certificate found", delivery.ErrTLSMaterial), want: delivery.ClassTLS},
		{name: "plain http behind an https URL", err: netOpErr(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), want: delivery.ClassTLS},
		{name: "retryOn4xx does not change errors", err: netOpErr(syscall.ECONNREFUSED), retryOn4xx: true, want: delivery.ClassRetry},
		{name: "SSRF guard refusal", err: netOpErr(refused), want: delivery.ClassPermanent},
		{name: "SSRF guard refusal with retryOn4xx", err: netOpErr(refused), retryOn4xx: true, want: delivery.ClassPermanent},
		{name: "invalid request", err: fmt.Errorf("%w: URL scheme %q is not http or https", delivery.ErrInvalidRequest, "file"), want: delivery.ClassPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := delivery.Classify(tt.status, tt.err, tt.retryOn4xx); got != tt.want {
				t.Errorf("Classify(%d, %v, %v) = %s, want %s", tt.status, tt.err, tt.retryOn4xx, got, tt.want)
			}
		})
	}
}
