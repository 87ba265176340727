package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/hookpost/hookpost/internal/netguard"
)

// errorMessage turns a failed attempt's error into the short message shown in a
// delivery's status. It builds the message from the error's parts rather than
// printing the error, because *url.Error repeats the whole URL (which may carry
// credentials) and the standard messages are written for Go programmers.
func errorMessage(err error, parent context.Context, timeout time.Duration) string {
	var (
		refused  *netguard.RefusedError
		dnsErr   *net.DNSError
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &refused):
		return refused.Error()
	case parent.Err() != nil:
		// The operator is shutting down or the reconcile was cancelled: not
		// the receiver's fault, and the attempt will be made again.
		return "attempt canceled: " + parent.Err().Error()
	case receiverAlert(err) != "":
		// Checked before timeouts: an alert is never one, and it says more than any other part of err.
		return receiverAlertMessage(receiverAlert(err))
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("timeout after %s", timeout)
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "DNS: no such host " + dnsErr.Name
		}
		return fmt.Sprintf("DNS: lookup of %s failed: %s", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &certErr):
		return x509Message(certErr.Err)
	case errors.As(err, &unknown):
		return x509Message(unknown)
	case errors.As(err, &hostErr):
		return x509Message(hostErr)
	case errors.As(err, &invalid):
		return x509Message(invalid)
	case errors.As(err, &recErr):
		return "TLS: the receiver did not answer with TLS (is it a plain http:// endpoint?)"
	case errors.As(err, &alertErr):
		return "TLS: receiver sent alert: " + strings.TrimPrefix(alertErr.Error(), "tls: ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the receiver before a response"
	case strings.Contains(err.Error(), "server response headers exceeded"):
		// net/http says so only in its message.
		return fmt.Sprintf("the receiver's response headers exceed %d KiB; not read", MaxResponseHeaderBytes>>10)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "tls: "); ok {
		return "TLS: " + rest
	}
	return msg
}

// receiverAlert returns the TLS alert the receiver sent, such as "certificate required" when it wants a client
// certificate and got none; "" when err is no such alert. crypto/tls's type for it is unexported: it arrives as
// a *net.OpError with Op "remote error", possibly inside other *net.OpErrors.
func receiverAlert(err error) string {
	for err != nil {
		if op, ok := err.(*net.OpError); ok && op.Op == "remote error" && op.Err != nil {
			return strings.TrimPrefix(op.Err.Error(), "tls: ")
		}
		err = errors.Unwrap(err)
	}
	return ""
}

// receiverAlertMessage explains a TLS alert the receiver sent during the handshake. The ones about certificates
// are, from a receiver that requires mutual TLS, about ours: say which Hookpost setting fixes them.
func receiverAlertMessage(alert string) string {
	switch alert {
	case "certificate required", "handshake failure":
		return "TLS: the receiver requires a client certificate and was sent none (alert: " + alert + "); name a kubernetes.io/tls Secret in spec.tls.clientCertificateRef"
	case "bad certificate", "unknown certificate authority", "certificate unknown", "unsupported certificate",
		"certificate expired", "certificate revoked", "access denied":
		return "TLS: the receiver rejected the client certificate of spec.tls.clientCertificateRef (alert: " + alert + "); use one signed by a CA the receiver trusts"
	}
	return "TLS: receiver sent alert: " + alert
}

func x509Message(err error) string {
	return "TLS: " + strings.TrimPrefix(err.Error(), "x509: ")
}
