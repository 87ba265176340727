package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PayloadFormat is the shape of the JSON body a receiver gets.
// +kubebuilder:validation:Enum=Envelope;Collection;CloudEvents;CloudEventsBinary
type PayloadFormat string

const (
	// PayloadFormatEnvelope sends {"event","tenant_id","timestamp","data"}.
	PayloadFormatEnvelope PayloadFormat = "Envelope"
	// PayloadFormatCollection sends {"event","collection","payload"}.
	PayloadFormatCollection PayloadFormat = "Collection"
	// PayloadFormatCloudEvents sends a CloudEvents 1.0 event in structured mode.
	PayloadFormatCloudEvents PayloadFormat = "CloudEvents"
	// PayloadFormatCloudEventsBinary sends a CloudEvents 1.0 event in HTTP binary mode: the data as the body,
	// the attributes as ce-* headers.
	PayloadFormatCloudEventsBinary PayloadFormat = "CloudEventsBinary"
)

// SigningScheme is how a body is signed.
// +kubebuilder:validation:Enum=HMACSHA256Hex;StandardWebhooks
type SigningScheme string

const (
	// SigningSchemeHMACSHA256Hex puts the hex HMAC-SHA256 of the body in spec.signing.header.
	SigningSchemeHMACSHA256Hex SigningScheme = "HMACSHA256Hex"
	// SigningSchemeStandardWebhooks sends webhook-id, webhook-timestamp and webhook-signature (v1,<base64>).
	SigningSchemeStandardWebhooks SigningScheme = "StandardWebhooks"
)

// EventPattern selects event types: an exact type, a pattern with * segments, or * for every event.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:XValidation:rule="self.matches('^(\\\\*|[A-Za-z0-9_-]+)(\\\\.(\\\\*|[A-Za-z0-9_-]+))*$')",message="spec.events entries must be an event type such as order.created, a pattern whose * stands for one dot-separated segment such as order.*, or * for every event"
type EventPattern string

// HeaderName is an HTTP header name.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
type HeaderName string

// WebhookSubscriptionSpec says where events go, which events, and how they are signed and retried.
// +kubebuilder:validation:XValidation:rule="!isURL(self.url) || url(self.url).getScheme() == 'https' || (url(self.url).getScheme() == 'http' && has(self.allowInsecureHTTP) && self.allowInsecureHTTP)",message="spec.url must start with https://; to deliver over plain http set spec.allowInsecureHTTP: true"
// +kubebuilder:validation:XValidation:rule="!has(self.headers) || !has(self.signing) || !has(self.signing.header) || !self.headers.exists(k, k.lowerAscii() == self.signing.header.lowerAscii())",message="spec.headers must not set the signature header named in spec.signing.header; Hookpost writes it"
// +kubebuilder:validation:XValidation:rule="!has(self.headers) || !has(self.signing) || !has(self.signing.additional) || !self.signing.additional.exists(a, has(a.header) && self.headers.exists(k, k.lowerAscii() == a.header.lowerAscii()))",message="spec.headers must not set a signature header named in spec.signing.additional; Hookpost writes it"
// +kubebuilder:validation:XValidation:rule="!has(self.headers) || !has(self.payloadFormat) || self.payloadFormat != 'CloudEventsBinary' || !self.headers.exists(k, k.lowerAscii() in ['ce-specversion', 'ce-id', 'ce-source', 'ce-type', 'ce-subject', 'ce-time', 'ce-tenantid'])",message="spec.headers must not set a CloudEvents attribute Hookpost sends with payloadFormat CloudEventsBinary (ce-specversion, ce-id, ce-source, ce-type, ce-subject, ce-time, ce-tenantid); remove it, or use a ce- name of your own for an extension attribute"
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || !isURL(self.url) || url(self.url).getScheme() == 'https'",message="spec.tls applies only to an https:// spec.url; remove spec.tls or use https"
type WebhookSubscriptionSpec struct {
	// url is the endpoint that receives a POST for every matching event. It must be https:// unless
	// allowInsecureHTTP is true.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || url(self).getScheme() == 'http') && url(self).getHostname() != ''",message="spec.url must be an absolute http(s) URL with a host, such as https://example.com/webhooks"
	// +required
	URL string `json:"url"`

	// allowInsecureHTTP permits an http:// url. Bodies are signed, but not encrypted, on plain http.
	// +kubebuilder:default=false
	// +optional
	AllowInsecureHTTP bool `json:"allowInsecureHTTP,omitempty"`

	// events are the event types this subscription receives: exact types (order.created), patterns whose *
	// matches one dot-separated segment (order.*), or * for every event.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +required
	Events []EventPattern `json:"events"`

	// filter narrows the events further, by tenant, collection or content (a CEL expression).
	// +optional
	Filter *EventFilter `json:"filter,omitempty"`

	// ordering delivers the events that share a key one at a time, in source order: a key's next delivery is sent
	// only once the one before it has finished (a failing one holds only its own key's successors). Unset: every
	// delivery goes on its own, as fast as it can. Ordered matches are never attempted straight from ingest; they
	// become WebhookDeliveries first, which costs latency (docs/subscriptions.md, "Ordered delivery").
	// +optional
	Ordering *Ordering `json:"ordering,omitempty"`

	// payloadFormat is the body's shape: Envelope {"event","tenant_id","timestamp","data"}, Collection
	// {"event","collection","payload"}, CloudEvents (structured mode, specversion 1.0: attributes and data in
	// one JSON body), or CloudEventsBinary (binary mode: the data is the body, the attributes are ce-* headers;
	// the signature covers the body, so the data only).
	// +kubebuilder:default=Envelope
	// +optional
	PayloadFormat PayloadFormat `json:"payloadFormat,omitempty"`

	// signing says how requests are signed. Without secretRef, Hookpost generates a secret and names it in
	// status.signingSecretRef.
	// +kubebuilder:default={}
	// +optional
	Signing Signing `json:"signing,omitempty"`

	// headers are static extra request headers. Headers Hookpost owns (Content-Type, User-Agent, X-Event-Id,
	// X-Hookpost-*, webhook-*, the signature header) are rejected.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z0-9!#$%&\\'*+.^_|~-]{1,128}$'))",message="spec.headers names must be HTTP header names (letters, digits and !#$%&'*+.^_|~-, at most 128 characters)"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k.lowerAscii() in ['content-type', 'content-length', 'host', 'user-agent', 'x-event-id', 'x-webhook-signature', 'x-urbackend-signature']) && !k.lowerAscii().startsWith('webhook-') && !k.lowerAscii().startsWith('x-hookpost-'))",message="spec.headers must not set a header Hookpost owns: Content-Type, Content-Length, Host, User-Agent, X-Event-Id, X-Hookpost-*, webhook-* or a signature header; remove it"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 1024)",message="spec.headers values must be at most 1024 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k.lowerAscii() in ['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade']))",message="spec.headers must not set connection-level headers (Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade); the HTTP client manages them"
	// +optional
	Headers map[string]string `json:"headers,omitempty"`

	// timeout is how long one attempt may take, from 1s to 60s.
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('60s')",message="spec.timeout must be between 1s and 60s, such as 10s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// rateLimit bounds how often attempts to this subscription start, first attempts and retries alike:
	// perSecond on average, at most burst back to back. Deliveries over the limit wait (Pending, or Retrying
	// with their next attempt due) without spending a retry. Each operator replica that ingests enforces the
	// limit on its own, so N replicas may start up to N times perSecond (docs/subscriptions.md, "Rate limit").
	// Unset: no limit beyond the operator's attempts in flight per host.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// retry is the retry policy for failed attempts.
	// +kubebuilder:default={}
	// +optional
	Retry RetryPolicy `json:"retry,omitempty"`

	// paused holds new and retrying deliveries Pending; nothing is dropped, and they are sent when unpaused.
	// +kubebuilder:default=false
	// +optional
	Paused bool `json:"paused,omitempty"`

	// circuitBreaker stops attempts to an endpoint that keeps failing: its deliveries wait (not Failed, no retry
	// budget spent) while the circuit is open, one probe tests the endpoint when the open period ends, and the
	// deliveries that waited drain at a bounded rate once a probe succeeds.
	// +kubebuilder:default={}
	// +optional
	CircuitBreaker CircuitBreaker `json:"circuitBreaker,omitempty"`

	// tls configures the TLS client side of https attempts: a client certificate for receivers that require mutual
	// TLS, and a CA bundle that verifies the receiver instead of the operator's trust roots. Changes to the Secrets
	// and ConfigMap it names apply from the next attempt on, without a restart. See docs/subscriptions.md.
	// +optional
	TLS *SubscriptionTLS `json:"tls,omitempty"`

	// history bounds how many finished WebhookDeliveries are kept for this subscription, so etcd never fills up.
	// +kubebuilder:default={}
	// +optional
	History HistoryLimits `json:"history,omitempty"`
}

// EventFilter narrows a subscription's events: an event is delivered when it passes every filter set. An empty
// list or expression does not filter.
type EventFilter struct {
	// tenants are the tenant ids whose events are delivered.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Tenants []string `json:"tenants,omitempty"`

	// collections are the collections whose events are delivered.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Collections []string `json:"collections,omitempty"`

	// expression is a CEL expression over the event that must evaluate to true for the event to be delivered,
	// such as `data.amount > 100 && tenant == "acme"`. Its variables: type (string, the event type), tenant
	// (string, "" for none), collection (string, "" for none), data (the event's JSON payload: objects are maps,
	// numbers are doubles) and time (timestamp, when the event occurred). Reading a field data lacks is an error:
	// guard it with has(data.field). Hookpost compiles it when the subscription changes (Ready=False with reason
	// InvalidFilter and the compiler's message when it does not compile, and then no event is delivered) and
	// evaluates it on every event that matches events, within a cost limit; an event whose evaluation fails or
	// exceeds the limit is not delivered, and counted in hookpost_filter_errors_total. See docs/subscriptions.md.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Expression string `json:"expression,omitempty"`
}

// OrderingOnExhausted is what a key's successors do once a delivery of the key has failed for good.
// +kubebuilder:validation:Enum=Skip;Block
type OrderingOnExhausted string

const (
	// OrderingSkip lets the key's next delivery go once the failed one is Failed: the key moves on without it.
	OrderingSkip OrderingOnExhausted = "Skip"
	// OrderingBlock holds the key's successors while a delivery of the key is Failed, until it is replayed and
	// succeeds, or deleted.
	OrderingBlock OrderingOnExhausted = "Block"
)

// Ordering says which events are kept in order among themselves, and what a failure does to those behind it.
type Ordering struct {
	// key is a CEL expression over the event (the variables of spec.filter.expression: type, tenant, collection,
	// data, time) whose value, a string or a number, is the event's ordering key, such as string(data.order_id) or
	// tenant. Events with the same key are delivered one at a time in source order (the outbox's id, the
	// JetStream stream sequence). An event for which the expression fails, or is empty, gets the key "" and is
	// ordered with the other such events. Hookpost compiles it when the subscription changes: Ready=False with
	// reason InvalidOrderingKey and the compiler's message when it does not compile.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Key string `json:"key"`

	// onExhausted is what a delivery that failed for good (retries exhausted, or rejected) does to its key's
	// successors: Skip (the default) lets the next one go; Block holds them until the failed one is replayed and
	// succeeds, or is deleted.
	// +kubebuilder:default=Skip
	// +optional
	OnExhausted OrderingOnExhausted `json:"onExhausted,omitempty"`
}

// Signing selects the signature schemes and their one secret.
// +kubebuilder:validation:XValidation:rule="!has(self.header) || self.scheme == 'HMACSHA256Hex'",message="spec.signing.header applies only to scheme HMACSHA256Hex; StandardWebhooks always uses the webhook-* headers"
// +kubebuilder:validation:XValidation:rule="!has(self.additional) || self.additional.filter(a, a.scheme == 'StandardWebhooks').size() + (self.scheme == 'StandardWebhooks' ? 1 : 0) <= 1",message="spec.signing may use scheme StandardWebhooks once (in spec.signing.scheme or one spec.signing.additional entry): it always writes the webhook-* headers; remove the duplicate"
// +kubebuilder:validation:XValidation:rule="!has(self.additional) || self.scheme != 'HMACSHA256Hex' || !self.additional.exists(a, a.scheme == 'HMACSHA256Hex' && (has(a.header) ? a.header : 'X-Webhook-Signature').lowerAscii() == (has(self.header) ? self.header : 'X-Webhook-Signature').lowerAscii())",message="spec.signing.additional HMACSHA256Hex entries must use a header other than spec.signing.header (X-Webhook-Signature when unset): two signatures cannot share a header; set spec.signing.additional[].header"
// +kubebuilder:validation:XValidation:rule="!has(self.additional) || self.additional.all(a, a.scheme != 'HMACSHA256Hex' || self.additional.filter(b, b.scheme == 'HMACSHA256Hex' && (has(b.header) ? b.header : 'X-Webhook-Signature').lowerAscii() == (has(a.header) ? a.header : 'X-Webhook-Signature').lowerAscii()).size() == 1)",message="spec.signing.additional HMACSHA256Hex entries must each use a different header (X-Webhook-Signature when unset): two signatures cannot share a header"
// +kubebuilder:validation:XValidation:rule="!has(self.additional) || !has(self.header) || !(self.header.lowerAscii() in ['content-type', 'content-length', 'host', 'user-agent', 'x-event-id'] || self.header.lowerAscii().startsWith('webhook-') || self.header.lowerAscii().startsWith('x-hookpost-'))",message="spec.signing.header must not name a header Hookpost owns (Content-Type, Content-Length, Host, User-Agent, X-Event-Id, X-Hookpost-*, webhook-*) when spec.signing.additional is set; choose another header"
// +kubebuilder:validation:XValidation:rule="!has(self.header) || !self.header.lowerAscii().endsWith('-next')",message="spec.signing.header must not end in -Next: during a secret rotation Hookpost sends the new key's signature in <header>-Next; choose another header"
type Signing struct {
	// scheme is HMACSHA256Hex (hex HMAC-SHA256 of the body in header) or StandardWebhooks
	// (webhook-id, webhook-timestamp, webhook-signature; secret in whsec_ form).
	// +kubebuilder:default=HMACSHA256Hex
	// +optional
	Scheme SigningScheme `json:"scheme,omitempty"`

	// header carries the HMACSHA256Hex signature; X-Webhook-Signature when unset.
	// +optional
	Header HeaderName `json:"header,omitempty"`

	// additional are more signatures sent on every request besides the one of scheme, each in its own header,
	// for receivers migrating from one scheme to another (such as from HMACSHA256Hex to StandardWebhooks). All
	// are keyed with the one secret: with StandardWebhooks among the schemes it must have the whsec_ form, and
	// HMACSHA256Hex signs with that whole string as text, as the receivers' recipes pass it (docs/receivers.md).
	// No two signatures may write the same header.
	// +kubebuilder:validation:MaxItems=4
	// +listType=atomic
	// +optional
	Additional []AdditionalSignature `json:"additional,omitempty"`

	// secretRef names a Secret in the subscription's namespace holding the signing secret. When absent,
	// Hookpost generates one into a Secret it owns.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`

	// rotationOverlap is how long the previous secret keeps signing after a rotation (a new value under the
	// secret's key and the old one under "<key>.previous" in the same Secret, as `kubectl hookpost secret rotate`
	// writes them): during it every request also carries the new key's signature (docs/receivers.md), and at
	// its end the previous key stops signing. From 1m to 720h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('720h')",message="spec.signing.rotationOverlap must be between 1m and 720h, such as 24h"
	// +optional
	RotationOverlap *metav1.Duration `json:"rotationOverlap,omitempty"`
}

// PreviousKeySuffix is appended to a signing Secret's key to name the key that holds the previous secret during a
// rotation: "secret.previous" for the default key.
const PreviousKeySuffix = ".previous"

// DefaultRotationOverlap is spec.signing.rotationOverlap's default.
const DefaultRotationOverlap = 24 * time.Hour

// SigningKeyRole says what a signing key does.
// +kubebuilder:validation:Enum=Current;Previous;Expired
type SigningKeyRole string

const (
	// SigningKeyCurrent is the secret under the Secret's key: it signs every request (during an overlap, in the
	// -Next header and first among the webhook-signature values).
	SigningKeyCurrent SigningKeyRole = "Current"
	// SigningKeyPrevious is the secret under "<key>.previous" until expiresAt: it keeps signing the primary
	// HMACSHA256Hex header, and second among the webhook-signature values.
	SigningKeyPrevious SigningKeyRole = "Previous"
	// SigningKeyExpired is a previous secret past expiresAt that is still in a Secret Hookpost does not own; it
	// signs nothing, and you may remove "<key>.previous".
	SigningKeyExpired SigningKeyRole = "Expired"
)

// SigningKey identifies one key of a subscription's signing Secret, never showing its value.
type SigningKey struct {
	// id is the first 8 hex digits of the SHA-256 of the secret value: enough to tell keys apart and to match
	// `kubectl hookpost secret -o json`, not enough to recover the secret.
	// +kubebuilder:validation:MaxLength=16
	// +required
	ID string `json:"id"`

	// role is Current, Previous (still signing until expiresAt) or Expired.
	// +required
	Role SigningKeyRole `json:"role"`

	// expiresAt is when a Previous key stops signing: when Hookpost first saw it plus spec.signing.rotationOverlap.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
}

// AdditionalSignature is one more signature a request carries, keyed with the subscription's signing secret.
// +kubebuilder:validation:XValidation:rule="!has(self.header) || self.scheme == 'HMACSHA256Hex'",message="spec.signing.additional[].header applies only to scheme HMACSHA256Hex; StandardWebhooks always uses the webhook-* headers"
// +kubebuilder:validation:XValidation:rule="!has(self.header) || !(self.header.lowerAscii() in ['content-type', 'content-length', 'host', 'user-agent', 'x-event-id'] || self.header.lowerAscii().startsWith('webhook-') || self.header.lowerAscii().startsWith('x-hookpost-'))",message="spec.signing.additional[].header must not name a header Hookpost owns (Content-Type, Content-Length, Host, User-Agent, X-Event-Id, X-Hookpost-*, webhook-*); choose another header such as X-urBackend-Signature"
// +kubebuilder:validation:XValidation:rule="!has(self.header) || !self.header.lowerAscii().endsWith('-next')",message="spec.signing.additional[].header must not end in -Next: during a secret rotation Hookpost sends the new key's signature in <header>-Next; choose another header"
type AdditionalSignature struct {
	// scheme is HMACSHA256Hex (hex HMAC-SHA256 of the body in header) or StandardWebhooks (webhook-id,
	// webhook-timestamp, webhook-signature).
	// +required
	Scheme SigningScheme `json:"scheme"`

	// header carries the HMACSHA256Hex signature; X-Webhook-Signature when unset.
	// +optional
	Header HeaderName `json:"header,omitempty"`
}

// SecretKeyRef points at one key of a Secret in the same namespace.
type SecretKeyRef struct {
	// name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key is the data key holding the secret; "secret" when unset.
	// +kubebuilder:default=secret
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// SubscriptionTLS is a subscription's TLS material.
// +kubebuilder:validation:XValidation:rule="has(self.clientCertificateRef) || has(self.caBundleRef)",message="spec.tls must set clientCertificateRef, caBundleRef or both; remove spec.tls to use neither"
type SubscriptionTLS struct {
	// clientCertificateRef names a kubernetes.io/tls Secret in the subscription's namespace whose tls.crt
	// (certificate, chain allowed) and tls.key (its private key) are presented to a receiver that asks for a client
	// certificate. Like a signing Secret, it must carry the label webhooks.hookpost.io/signing-secret=true.
	// +optional
	ClientCertificateRef *LocalSecretRef `json:"clientCertificateRef,omitempty"`

	// caBundleRef names the PEM certificates that verify the receiver's certificate, in place of the operator's
	// trust roots: for receivers whose certificate a private CA signed.
	// +optional
	CABundleRef *CABundleRef `json:"caBundleRef,omitempty"`
}

// LocalSecretRef names a Secret in the same namespace.
type LocalSecretRef struct {
	// name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// CABundleRef points at one key of a Secret or a ConfigMap in the same namespace holding PEM CA certificates.
// +kubebuilder:validation:XValidation:rule="has(self.secretName) != has(self.configMapName)",message="spec.tls.caBundleRef must set exactly one of secretName or configMapName"
type CABundleRef struct {
	// secretName names a Secret holding the bundle; it must carry the label
	// webhooks.hookpost.io/signing-secret=true.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// configMapName names a ConfigMap holding the bundle; it must carry the label webhooks.hookpost.io/ca-bundle=true.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ConfigMapName string `json:"configMapName,omitempty"`

	// key is the data key holding the PEM certificates; ca.crt when unset.
	// +kubebuilder:default="ca.crt"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// RetryPolicy says when failed attempts are retried.
type RetryPolicy struct {
	// schedule is the delay before each retry: entry n is the wait before attempt n+1. After the last entry
	// the delivery is Failed. 1 to 25 entries, each from 1s to 72h.
	// +kubebuilder:default={"1m","5m","15m","1h","6h"}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=25
	// +kubebuilder:validation:XValidation:rule="self.all(d, duration(d) >= duration('1s') && duration(d) <= duration('72h'))",message="spec.retry.schedule entries must be durations from 1s to 72h, such as 1m or 6h"
	// +optional
	Schedule []metav1.Duration `json:"schedule,omitempty"`

	// retryOn4xx retries 4xx answers too (408 and 429 are always retried; 410 Gone never is).
	// +kubebuilder:default=false
	// +optional
	RetryOn4xx bool `json:"retryOn4xx,omitempty"`
}

// CircuitBreaker says when a subscription's circuit opens and how it recovers. A failed attempt is one that is
// retried (no answer, a timeout, a 5xx, a 408 or 429); a success closes the streak; a rejection (a 4xx that is not
// retried, 410 Gone) says nothing about the endpoint's health and is not counted.
// +kubebuilder:validation:XValidation:rule="!has(self.maxOpenFor) || !has(self.openFor) || duration(self.maxOpenFor) >= duration(self.openFor)",message="spec.circuitBreaker.maxOpenFor (default 10m) must be at least spec.circuitBreaker.openFor: raise maxOpenFor or lower openFor"
type CircuitBreaker struct {
	// consecutiveFailures opens the circuit after this many failed attempts in a row; 0 turns the rule off (and
	// with failureRatePercent 0 too, the breaker).
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +optional
	ConsecutiveFailures *int32 `json:"consecutiveFailures,omitempty"`

	// failureRatePercent opens the circuit when at least this percentage of the attempts of the last window
	// failed (counted over the current and the previous window), once they number minAttempts; 0 turns the rule off.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	FailureRatePercent int32 `json:"failureRatePercent,omitempty"`

	// window is the period failureRatePercent is measured over, from 10s to 1h.
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('1h')",message="spec.circuitBreaker.window must be between 10s and 1h, such as 1m"
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`

	// minAttempts is how many attempts the window must hold before failureRatePercent can open the circuit.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MinAttempts int32 `json:"minAttempts,omitempty"`

	// openFor is how long the circuit stays open before one probe attempt is let through, from 1s to 1h; each
	// failed probe doubles it, up to maxOpenFor.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="spec.circuitBreaker.openFor must be between 1s and 1h, such as 30s"
	// +optional
	OpenFor *metav1.Duration `json:"openFor,omitempty"`

	// maxOpenFor bounds the doubling of openFor, from 1s to 24h.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="spec.circuitBreaker.maxOpenFor must be between 1s and 24h, such as 10m"
	// +optional
	MaxOpenFor *metav1.Duration `json:"maxOpenFor,omitempty"`

	// drainPerSecond bounds the attempts per second, per replica, after the circuit closes, while the deliveries
	// that waited catch up; 0 does not bound them.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +optional
	DrainPerSecond *int32 `json:"drainPerSecond,omitempty"`

	// disableOnGone disables the subscription when its endpoint answers 410 Gone: Ready turns False with reason
	// EndpointGone and its deliveries wait, as if paused, until the spec changes (fix the url, or set paused true
	// and back to false). Without it a 410 fails only the delivery that got it.
	// +kubebuilder:default=false
	// +optional
	DisableOnGone bool `json:"disableOnGone,omitempty"`
}

// RateLimit bounds how often a subscription's attempts start.
// +kubebuilder:validation:XValidation:rule="!has(self.burst) || self.burst <= self.perSecond * 60",message="spec.rateLimit.burst must be at most 60 times spec.rateLimit.perSecond (one minute's worth); lower burst or raise perSecond"
type RateLimit struct {
	// perSecond is how many attempts may start per second on average, from 1 to 10000.
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 10000",message="spec.rateLimit.perSecond must be from 1 to 10000 attempts per second; remove spec.rateLimit for no limit"
	// +required
	PerSecond int32 `json:"perSecond"`

	// burst is how many attempts may start back to back after a quiet spell, from 1 to 10000. 1 (the default)
	// spreads attempts evenly, one every 1/perSecond seconds.
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 10000",message="spec.rateLimit.burst must be from 1 to 10000; 1 spreads attempts evenly"
	// +optional
	Burst int32 `json:"burst,omitempty"`
}

// HistoryLimits bound the finished deliveries kept per subscription.
type HistoryLimits struct {
	// succeededLimit is how many Succeeded deliveries to keep; older ones are deleted first. Deliveries that
	// succeed on their first attempt get an object only when they are among the newest of a flush interval
	// (see status.deliveredWithoutObject), so on a busy subscription the kept ones are a sample of the newest.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	// +optional
	SucceededLimit *int32 `json:"succeededLimit,omitempty"`

	// failedLimit is how many Failed deliveries to keep; older ones are deleted first.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	// +optional
	FailedLimit *int32 `json:"failedLimit,omitempty"`
}

// WebhookSubscriptionStatus is what Hookpost observed about a subscription.
type WebhookSubscriptionStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready says whether the subscription can deliver, with a reason when it cannot;
	// DeliveriesRefused is True while the API server refuses the deliveries of its events, with the reason;
	// CircuitOpen is True while attempts are stopped because the endpoint keeps failing.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// signingSecretRef is the Secret and key in use for signing (generated or the one in spec).
	// +optional
	SigningSecretRef *SecretKeyRef `json:"signingSecretRef,omitempty"`

	// signingKeys are the ids, roles and expiry of the signing Secret's keys: the current one and, during a
	// rotation's overlap, the previous one. Never their values.
	// +kubebuilder:validation:MaxItems=2
	// +listType=atomic
	// +optional
	SigningKeys []SigningKey `json:"signingKeys,omitempty"`

	// delivered counts deliveries that succeeded.
	// +optional
	Delivered int64 `json:"delivered,omitempty"`

	// failed counts deliveries that failed for good.
	// +optional
	Failed int64 `json:"failed,omitempty"`

	// pending counts deliveries not finished yet (Pending or Retrying).
	// +optional
	Pending int64 `json:"pending,omitempty"`

	// lastDeliveryTime is when the last attempt started, whatever its outcome.
	// +optional
	LastDeliveryTime *metav1.Time `json:"lastDeliveryTime,omitempty"`

	// lastSuccessTime is when a delivery last succeeded.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`

	// lastFailureTime is when an attempt last failed.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// prunedSucceeded and prunedFailed count deliveries deleted by the history limits; delivered and failed
	// include them, so the counters keep counting after old deliveries are gone.
	// +optional
	PrunedSucceeded int64 `json:"prunedSucceeded,omitempty"`

	// deliveredWithoutObject counts deliveries that succeeded on their first attempt, made straight from ingest,
	// and never got a WebhookDelivery object: only the newest successes of each flush interval, at most
	// spec.history.succeededLimit and a bounded number per second, are written as objects. delivered includes them. Hookpost adds to it at most once per subscription
	// per flush interval.
	// +optional
	DeliveredWithoutObject int64 `json:"deliveredWithoutObject,omitempty"`

	// prunedFailed: see prunedSucceeded.
	// +optional
	PrunedFailed int64 `json:"prunedFailed,omitempty"`

	// consecutiveFailures counts failed attempts since the last success.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`
}

// WebhookSubscription sends every matching event, signed, to a URL, and retries failures on a schedule.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=hookpost,shortName=whsub
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Delivered",type=integer,JSONPath=`.status.delivered`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Last Delivery",type=date,JSONPath=`.status.lastDeliveryTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Format",type=string,JSONPath=`.spec.payloadFormat`,priority=1
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pending`,priority=1
// +kubebuilder:printcolumn:name="Failing",type=integer,JSONPath=`.status.consecutiveFailures`,priority=1
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.spec.paused`,priority=1
// +kubebuilder:printcolumn:name="Circuit",type=string,JSONPath=`.status.conditions[?(@.type=="CircuitOpen")].reason`,priority=1
// +kubebuilder:printcolumn:name="Rate",type=integer,JSONPath=`.spec.rateLimit.perSecond`,description="Attempts started per second at most (spec.rateLimit.perSecond); empty when unlimited",priority=1
// +kubebuilder:printcolumn:name="Ordering Key",type=string,JSONPath=`.spec.ordering.key`,description="spec.ordering.key: events with the same key are delivered one at a time, in order",priority=1
// +kubebuilder:printcolumn:name="Backlogged",type=string,JSONPath=`.status.conditions[?(@.type=="Backlogged")].status`,priority=1
type WebhookSubscription struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired subscription.
	// +required
	Spec WebhookSubscriptionSpec `json:"spec"`

	// status is what Hookpost observed.
	// +optional
	Status WebhookSubscriptionStatus `json:"status,omitempty"`
}

// WebhookSubscriptionList is a list of WebhookSubscriptions.
// +kubebuilder:object:root=true
type WebhookSubscriptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookSubscription `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WebhookSubscription{}, &WebhookSubscriptionList{})
}
