package delivery

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/hookpost/hookpost/internal/envelope"
	"github.com/hookpost/hookpost/internal/signing"
)

// Headers Hookpost sets on every attempt. Receivers key on them, so they are
// part of the product's contract.
const (
	// HeaderEventID carries the event id: doc 000's idempotency key, the same
	// on every attempt and replay of an event.
	HeaderEventID  = "X-Event-Id"
	HeaderDelivery = "X-Hookpost-Delivery"
	HeaderAttempt  = "X-Hookpost-Attempt"
	// HeaderTest marks test events so receivers can avoid acting on them.
	HeaderTest = "X-Hookpost-Test"
)

// Target is where and how a subscription's events are sent, as plain values: the subscription's settings after
// the controller package has translated them from the API (defaults applied by the API server). Both the first
// attempt made from ingest and the delivery controller's retries build their attempts from it.
type Target struct {
	// Namespace and Subscription name the subscription; the CloudEvents source is derived from them.
	Namespace, Subscription string
	URL                     string
	Format                  envelope.Format
	// Signatures are every signature a request carries, all keyed with the subscription's one secret; the
	// subscription's spec.signing.scheme first, then spec.signing.additional.
	Signatures    []signing.Signature
	StaticHeaders map[string]string
	// Timeout bounds one attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// RetryOn4xx makes 4xx answers (other than 410) retry, for receivers that use them for transient failures.
	RetryOn4xx bool
	// Schedule is the delay before each retry.
	Schedule []time.Duration
	// Reach is what the subscription's namespace may reach beyond the SSRF guard.
	Reach Reach
	// Breaker says when the subscription's circuit opens (see Breakers); the zero policy never opens.
	Breaker BreakerPolicy
	// Rate bounds how often the subscription's attempts start (Sender.TakeRate, Sender.ReserveRate); the zero
	// value is no limit.
	Rate RateLimit
}

// CircuitKey names the subscription's circuit in Breakers.
func (t Target) CircuitKey() string { return CircuitKey(t.Namespace, t.Subscription) }

// CircuitKey names the circuit of subscription name in namespace, for callers that hold no Target. Its rate limit
// (spec.rateLimit) is booked under the same key: both are per subscription.
func CircuitKey(namespace, name string) string { return namespace + "/" + name }

// Attempt returns attempt number (1-based) of ev to t, signed with keys at now: the one place that turns
// (subscription, event, keys, attempt number, now) into what BuildRequest sends.
func (t Target) Attempt(ev envelope.Event, keys signing.Keys, deliveryName string, number int, test bool, now time.Time) Attempt {
	ev.Source = "/hookpost/" + t.Namespace + "/" + t.Subscription
	return Attempt{Target: t, Event: ev, Keys: keys, DeliveryName: deliveryName, Number: number, Test: test, Now: now}
}

// Attempt is everything needed to make one HTTP attempt, as plain values. Build it with Target.Attempt.
type Attempt struct {
	Target
	Event envelope.Event
	// Keys sign the request: the current secret, and the previous one during a rotation's overlap.
	Keys signing.Keys
	// TLS is the subscription's client certificate and CA bundle, read, like Keys, for each attempt, so a
	// rotated Secret is used from the next attempt on.
	TLS          ClientTLS
	DeliveryName string
	Number       int  // attempt number, 1-based
	Test         bool // a test event, marked with X-Hookpost-Test: true
	// Now is the signing timestamp, injected so a request is reproducible.
	Now time.Time
}

// BuildRequest returns the exact request attempt a makes. It is deterministic:
// the same Attempt always yields the same bytes, which is what lets
// `kubectl hookpost inspect` show a request without sending it. Errors wrap
// ErrInvalidRequest, because retrying cannot fix them.
func BuildRequest(a Attempt, userAgent string) (Request, error) {
	if _, err := parseDestination(a.URL); err != nil {
		return Request{}, err
	}
	body, contentType, err := envelope.Build(a.Format, a.Event)
	if err != nil {
		return Request{}, fmt.Errorf("%w: building the %s body: %w", ErrInvalidRequest, a.Format, err)
	}

	h := http.Header{}
	h.Set("Content-Type", contentType)
	h.Set("User-Agent", userAgent)
	h.Set(HeaderEventID, a.Event.ID)
	h.Set(HeaderDelivery, a.DeliveryName)
	h.Set(HeaderAttempt, strconv.Itoa(a.Number))
	if a.Test {
		h.Set(HeaderTest, "true")
	}
	// CloudEventsBinary's ce-* attributes. Set before the static headers, so those cannot replace them; the
	// signature below covers the body (the event's data) only, as in every format (docs/receivers.md).
	attrs, err := envelope.Headers(a.Format, a.Event)
	if err != nil {
		return Request{}, fmt.Errorf("%w: building the %s headers: %w", ErrInvalidRequest, a.Format, err)
	}
	for _, attr := range attrs {
		h.Set(attr.Name, attr.Value)
	}

	// The message id is the event id, so Standard Webhooks' webhook-id is the
	// same idempotency key as X-Event-Id, stable across retries.
	sig, err := signing.HeadersAll(a.Signatures, a.Keys, signing.Message{ID: a.Event.ID, Timestamp: a.Now, Body: body})
	if err != nil {
		// signing's errors name what is wrong with a secret, never the secret.
		return Request{}, fmt.Errorf("%w: signing: %w", ErrInvalidRequest, err)
	}
	for k, vs := range sig {
		h[canonical(k)] = slices.Clone(vs)
	}
	owned := make(map[string]bool, len(h))
	for k := range h {
		owned[k] = true
	}

	// The API rejects static headers that collide with Hookpost's; skipping
	// them here as well means a stale or hand-edited object cannot forge a
	// signature or an event id. Keys are sorted so two spellings of one header
	// resolve the same way every time.
	keys := make([]string, 0, len(a.StaticHeaders))
	for k := range a.StaticHeaders {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ck := canonical(k)
		if owned[ck] || transportOwned[ck] {
			continue
		}
		v := a.StaticHeaders[k]
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			// net/http would refuse to send it on every attempt: fail now, naming the header (not its value,
			// which may be a credential).
			return Request{}, fmt.Errorf("%w: static header %q has an invalid name or value (control characters such as CR or LF are not allowed)", ErrInvalidRequest, k)
		}
		h.Set(ck, v)
	}

	return Request{Method: http.MethodPost, URL: a.URL, Header: h, Body: body, Namespace: a.Namespace, Reach: a.Reach, TLS: a.TLS}, nil
}

// transportOwned are headers the HTTP transport computes from the request;
// setting them by hand would either be ignored or corrupt the framing.
var transportOwned = map[string]bool{
	"Host":              true,
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Connection":        true,
	"Te":                true,
	"Trailer":           true,
	"Upgrade":           true,
	"Keep-Alive":        true,
}

func canonical(k string) string {
	return http.CanonicalHeaderKey(k)
}
