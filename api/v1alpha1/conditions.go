package v1alpha1

// Condition types. Each is documented with its polarity: which status is the healthy one.
const (
	// ConditionReady is True on a WebhookSubscription when it can deliver: its signing secret resolves and it is
	// not paused. Positive polarity: True is healthy, so `kubectl wait --for=condition=Ready` works.
	ConditionReady = "Ready"

	// ConditionDelivered is True on a WebhookDelivery once a receiver accepted it with a 2xx, False with a reason
	// while it waits, retries or after it failed for good. Positive polarity.
	ConditionDelivered = "Delivered"

	// ConditionReplayDeferred is True on a WebhookDelivery while a requested replay waits for the replay rate
	// limits; its message says until when. Negative polarity: absent (or False) is the normal state.
	ConditionReplayDeferred = "ReplayDeferred"
)

// Reasons on the Ready condition of a WebhookSubscription.
const (
	// ReasonSecretReady: the signing secret resolves (Ready=True).
	ReasonSecretReady = "SecretReady"
	// ReasonSecretGenerated: Hookpost generated the signing secret into a Secret it owns (Ready=True).
	ReasonSecretGenerated = "SecretGenerated"
	// ReasonSecretNotFound: spec.signing.secretRef names a Secret that does not exist (Ready=False).
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretKeyMissing: the Secret exists but has no data under the configured key (Ready=False).
	ReasonSecretKeyMissing = "SecretKeyMissing"
	// ReasonSecretInvalid: the secret value is unusable for the scheme, e.g. not in whsec_ form (Ready=False).
	ReasonSecretInvalid = "SecretInvalid"
	// ReasonInvalidHeader: a spec.headers value holds a control character (such as CR or LF) that HTTP cannot
	// carry (Ready=False).
	ReasonInvalidHeader = "InvalidHeader"
	// ReasonPaused: spec.paused is true; deliveries wait, nothing is dropped (Ready=False).
	ReasonPaused = "Paused"
)

// Reasons on the Delivered condition of a WebhookDelivery.
const (
	// ReasonSucceeded: a receiver answered 2xx (Delivered=True).
	ReasonSucceeded = "Succeeded"
	// ReasonPending: the first attempt has not been made yet (Delivered=False).
	ReasonPending = "Pending"
	// ReasonRetrying: an attempt failed and another is scheduled at status.nextAttemptTime (Delivered=False).
	ReasonRetrying = "Retrying"
	// ReasonRetriesExhausted: every entry of the retry schedule was used (Delivered=False, terminal).
	ReasonRetriesExhausted = "RetriesExhausted"
	// ReasonRejected: the receiver answered a status that is not retried, such as a 4xx (Delivered=False, terminal).
	ReasonRejected = "Rejected"
	// ReasonInvalidRequest: the request cannot be built (the event cannot be encoded or signed); nothing was sent
	// (Delivered=False, terminal).
	ReasonInvalidRequest = "InvalidRequest"
	// ReasonGone: the receiver answered 410 Gone: the endpoint asked not to be sent this again (Delivered=False, terminal).
	ReasonGone = "Gone"
	// ReasonSubscriptionNotFound: the delivery's subscription does not exist (Delivered=False, waits).
	ReasonSubscriptionNotFound = "SubscriptionNotFound"
	// ReasonSubscriptionPaused: the subscription is paused; the delivery waits (Delivered=False).
	ReasonSubscriptionPaused = "SubscriptionPaused"
	// ReasonSubscriptionNotReady: the subscription's signing secret does not resolve yet (Delivered=False, waits).
	ReasonSubscriptionNotReady = "SubscriptionNotReady"
	// ReasonNotSealed: a Warning Event on a delivery that asks to be a real event but lacks the operator's seal
	// (it was not created by Hookpost): it is sent as a test event, with X-Hookpost-Test: true.
	ReasonNotSealed = "NotSealed"
	// ReasonReplayRateLimited: a replay waits for the per-delivery interval or the subscription's replay budget
	// (ReplayDeferred=True, and a Normal Event when the wait begins).
	ReasonReplayRateLimited = "ReplayRateLimited"
)

// Annotations and labels Hookpost reads or writes.
const (
	// AnnotationReplay: set to any new value on a WebhookDelivery to send it again, in any phase; history is kept.
	AnnotationReplay = "webhooks.hookpost.io/replay"
	// AnnotationReplayed records the replay value already acted on, so a replay is done once per value.
	AnnotationReplayed = "webhooks.hookpost.io/replayed"
	// AnnotationFirstAttempt carries the outcome of the first attempt, made by ingest before the delivery
	// existed, so the one create that makes the delivery durable also records that attempt; the delivery
	// controller moves it into status. Set by Hookpost only.
	AnnotationFirstAttempt = "webhooks.hookpost.io/first-attempt"
	// AnnotationSeal is the operator's HMAC over a delivery it created (see docs/subscriptions.md, "Who may send
	// real events"): a delivery without a valid seal is sent as a test event. Set by Hookpost only.
	AnnotationSeal = "webhooks.hookpost.io/seal"
	// LabelSubscription names a delivery's subscription.
	LabelSubscription = "webhooks.hookpost.io/subscription"
	// LabelEventType holds a delivery's event type (dots kept; label values allow them).
	LabelEventType = "webhooks.hookpost.io/event-type"
	// LabelTest marks test deliveries.
	LabelTest = "webhooks.hookpost.io/test"
)
