package delivery

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/hookpost/hookpost/internal/netguard"
)

// Class is what an attempt's outcome means for the delivery.
type Class string

const (
	// ClassSucceeded: the receiver accepted the event; the delivery is done.
	ClassSucceeded Class = "Succeeded"
	// ClassRetry: the failure may be transient; try again on the backoff schedule.
	ClassRetry Class = "Retry"
	// ClassPermanent: retrying the same request cannot succeed; the delivery fails now.
	ClassPermanent Class = "Permanent"
	// ClassGone: the receiver answered 410 Gone, asking us to stop sending to this
	// endpoint; the delivery fails now, whatever retryOn4xx says, and its status says why.
	ClassGone Class = "Gone"
	// ClassTLS: the TLS handshake failed (a receiver certificate no trusted CA signed,
	// a wrong host name, the receiver refusing or asking for a client certificate, a
	// plain-http endpoint) or the subscription's TLS material is unusable. Retried on
	// the schedule like ClassRetry: certificates and Secrets get fixed; its own class so
	// metrics, the ledger and status tell it from an unreachable receiver.
	ClassTLS Class = "TLS"
)

// ErrInvalidRequest marks errors that come from the request itself (a URL that
// cannot be sent to, a payload or signature that cannot be built). They are a
// deterministic function of the delivery's inputs, so they never retry.
var ErrInvalidRequest = errors.New("invalid request")

// Classify is the one table that says which outcomes retry. err is the error of
// the attempt when there was no response (statusCode 0); retryOn4xx is the
// subscription's choice for receivers that use 4xx for transient failures.
func Classify(statusCode int, err error, retryOn4xx bool) Class {
	if err != nil {
		var refused *netguard.RefusedError
		switch {
		case errors.As(err, &refused):
			// Permanent, although DNS could later point the name elsewhere: a
			// refused destination is a configuration problem (the URL, or the
			// operator's --allow-cidr) that no amount of waiting fixes, and
			// failing at once puts the guard's instructions in status now
			// instead of after seven hours of retries.
			return ClassPermanent
		case errors.Is(err, ErrInvalidRequest):
			return ClassPermanent
		case tlsFailure(err):
			return ClassTLS
		default:
			// Timeouts, refused or reset connections, DNS failures: doc 000's
			// failure conditions, all of which a receiver (or its DNS) can
			// recover from.
			return ClassRetry
		}
	}
	switch {
	case statusCode >= 200 && statusCode <= 299:
		return ClassSucceeded
	case statusCode == http.StatusGone:
		// 410 is the receiver saying the endpoint is gone for good. It stays
		// permanent even with retryOn4xx: retrying would ignore an explicit
		// request to stop.
		return ClassGone
	case statusCode == http.StatusRequestTimeout:
		// 408: the receiver (or its proxy) gave up waiting on us; the same
		// request can succeed next time.
		return ClassRetry
	case statusCode == http.StatusTooManyRequests:
		// 429: the receiver is rate limiting; retry, honouring Retry-After.
		return ClassRetry
	case statusCode >= 300 && statusCode <= 399:
		// Redirects are not followed (a redirect could lead the signed payload
		// past the SSRF guard's intent or to another host). A 3xx counts as a
		// failed attempt that retries, because it is usually a misconfigured
		// or moving endpoint that its owner fixes, not a verdict on the event.
		return ClassRetry
	case statusCode >= 400 && statusCode <= 499:
		if retryOn4xx {
			// Doc 002's receivers answer 4xx for transient problems and
			// expect retries.
			return ClassRetry
		}
		// The receiver rejected this request (bad signature, unknown route,
		// validation); the identical retry would be rejected too.
		return ClassPermanent
	case statusCode >= 500 && statusCode <= 599:
		return ClassRetry
	default:
		// No response and no error, or a status outside HTTP's classes: we do
		// not know the event arrived, so try again.
		return ClassRetry
	}
}

// tlsFailure reports whether err is a failed TLS handshake or unusable TLS material: errorMessage, which knows
// every TLS error's shape, words it as one.
func tlsFailure(err error) bool {
	return errors.Is(err, ErrTLSMaterial) || strings.HasPrefix(errorMessage(err, context.Background(), 0), "TLS: ")
}
