package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PayloadFormat is the shape of the JSON body a receiver gets.
// +kubebuilder:validation:Enum=Envelope;Collection;CloudEvents
type PayloadFormat string

const (
	// PayloadFormatEnvelope sends {"event","tenant_id","timestamp","data"}.
	PayloadFormatEnvelope PayloadFormat = "Envelope"
	// PayloadFormatCollection sends {"event","collection","payload"}.
	PayloadFormatCollection PayloadFormat = "Collection"
	// PayloadFormatCloudEvents sends a CloudEvents 1.0 event in structured mode.
	PayloadFormatCloudEvents PayloadFormat = "CloudEvents"
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

	// filter narrows the events further, by tenant or collection.
	// +optional
	Filter *EventFilter `json:"filter,omitempty"`

	// payloadFormat is the body's shape: Envelope {"event","tenant_id","timestamp","data"}, Collection
	// {"event","collection","payload"}, or CloudEvents (structured mode, specversion 1.0).
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

	// retry is the retry policy for failed attempts.
	// +kubebuilder:default={}
	// +optional
	Retry RetryPolicy `json:"retry,omitempty"`

	// paused holds new and retrying deliveries Pending; nothing is dropped, and they are sent when unpaused.
	// +kubebuilder:default=false
	// +optional
	Paused bool `json:"paused,omitempty"`

	// history bounds how many finished WebhookDeliveries are kept for this subscription, so etcd never fills up.
	// +kubebuilder:default={}
	// +optional
	History HistoryLimits `json:"history,omitempty"`
}

// EventFilter narrows a subscription's events. An empty list does not filter.
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
}

// Signing selects the signature scheme and its secret.
// +kubebuilder:validation:XValidation:rule="!has(self.header) || self.scheme == 'HMACSHA256Hex'",message="spec.signing.header applies only to scheme HMACSHA256Hex; StandardWebhooks always uses the webhook-* headers"
type Signing struct {
	// scheme is HMACSHA256Hex (hex HMAC-SHA256 of the body in header) or StandardWebhooks
	// (webhook-id, webhook-timestamp, webhook-signature; secret in whsec_ form).
	// +kubebuilder:default=HMACSHA256Hex
	// +optional
	Scheme SigningScheme `json:"scheme,omitempty"`

	// header carries the HMACSHA256Hex signature; X-Webhook-Signature when unset.
	// +optional
	Header HeaderName `json:"header,omitempty"`

	// secretRef names a Secret in the subscription's namespace holding the signing secret. When absent,
	// Hookpost generates one into a Secret it owns.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`
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
	// DeliveriesRefused is True while the API server refuses the deliveries of its events, with the reason.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// signingSecretRef is the Secret and key in use for signing (generated or the one in spec).
	// +optional
	SigningSecretRef *SecretKeyRef `json:"signingSecretRef,omitempty"`

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
