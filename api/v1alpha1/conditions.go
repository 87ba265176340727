package v1alpha1

// Condition types. Each is documented with its polarity: which status is the healthy one.
const (
	// ConditionReady is True on a WebhookSubscription when it can deliver: its signing secret resolves and it is
	// not paused. Positive polarity: True is healthy, so `kubectl wait --for=condition=Ready` works.
	ConditionReady = "Ready"

	// ConditionDelivered is True on a WebhookDelivery once a receiver accepted it with a 2xx, False with a reason
	// while it waits, retries or after it failed for good. Positive polarity.
	ConditionDelivered = "Delivered"

	// ConditionTenantsGranted is set on a WebhookSubscription while the operator runs with tenant isolation
	// (--tenant-isolation): True when its namespace is granted tenants (AnnotationTenants) and every tenant its
	// spec.filter.tenants names, False when the subscription would miss events for want of a grant. Positive
	// polarity. Absent when isolation is off.
	ConditionTenantsGranted = "TenantsGranted"

	// ConditionDeliveriesRefused is True on a WebhookSubscription while the API server refuses the
	// WebhookDeliveries ingest makes for it (an admission policy or webhook denying them in its namespace, the
	// operator forbidden there though allowed elsewhere, an object the server finds invalid, a full quota, the
	// namespace being deleted): those events are not delivered
	// to it, and are recorded in the ledger with outcome refused. It turns False once a delivery is created again
	// after a quiet minute. Negative polarity: True needs attention; absent or False is healthy.
	ConditionDeliveriesRefused = "DeliveriesRefused"

	// ConditionCircuitOpen is True on a WebhookSubscription while its circuit breaker (spec.circuitBreaker) holds
	// its deliveries because the endpoint keeps failing: they wait, spending no retry budget, and one probe
	// attempt tests the endpoint when the open period ends (the message says when). False once a probe succeeded.
	// Negative polarity: absent or False is healthy. Each replica keeps its own circuit; the condition shows the
	// circuit of the replica that ran the subscription controller.
	ConditionCircuitOpen = "CircuitOpen"

	// ConditionBacklogged is True on a WebhookSubscription while matches of it are parked in the ledger's
	// database because it (or the cluster) had reached its cap of unfinished WebhookDeliveries
	// (--max-unfinished-per-subscription, --max-unfinished; reason UnfinishedCapReached), or because its endpoint
	// was failing or hanging (reason EndpointUnavailable); the message counts them. They become deliveries in
	// order of arrival as there is room and the endpoint takes deliveries, while it is not paused; nothing is lost.
	// Negative polarity: True needs attention (a paused subscription, or a receiver that does not keep up); absent
	// or False is healthy.
	ConditionBacklogged = "Backlogged"

	// ConditionReplayDeferred is True on a WebhookDelivery while a requested replay waits for the replay rate
	// limits; its message says until when. Negative polarity: absent (or False) is the normal state.
	ConditionReplayDeferred = "ReplayDeferred"

	// ConditionComplete is True on a WebhookReplay once every delivery it selected was replayed and finished
	// again (its reason says whether all succeeded), False while it replays. Positive polarity, so
	// `kubectl wait --for=condition=Complete whrep/NAME` waits for a bulk replay.
	ConditionComplete = "Complete"
)

// Reasons on the Complete condition of a WebhookReplay (and of its Events).
const (
	// ReasonReplaying: deliveries are being replayed, or replayed ones have not finished yet (Complete=False).
	ReasonReplaying = "Replaying"
	// ReasonReplaySucceeded: every selected delivery was replayed and a receiver accepted it (Complete=True).
	ReasonReplaySucceeded = "Succeeded"
	// ReasonReplaySomeFailed: every selected delivery was replayed and at least one failed again (Complete=True).
	ReasonReplaySomeFailed = "SomeFailed"
	// ReasonNothingSelected: no delivery matched spec.selector when the replay started (Complete=True).
	ReasonNothingSelected = "NothingSelected"
	// ReasonReplayStarted: the Normal Event recorded when a WebhookReplay selects its deliveries.
	ReasonReplayStarted = "Started"
	// ReasonSourceNotConfigured: spec.source names a source the operator does not read (Complete=False, and a
	// Warning Event); only a new WebhookReplay naming a source it reads can run.
	ReasonSourceNotConfigured = "SourceNotConfigured"
)

// Reasons on the TenantsGranted condition of a WebhookSubscription.
const (
	// ReasonTenantsGranted: the namespace is granted every tenant the subscription filters on, or all tenants (True).
	ReasonTenantsGranted = "TenantsGranted"
	// ReasonNoTenantGrant: the namespace carries no AnnotationTenants, so the subscription receives no events (False).
	ReasonNoTenantGrant = "NoTenantGrant"
	// ReasonTenantNotGranted: spec.filter.tenants names a tenant the namespace is not granted; its events are not
	// delivered here (False).
	ReasonTenantNotGranted = "TenantNotGranted"
)

// Reasons of the Normal Events a WebhookSubscription gets during a secret rotation (docs/receivers.md).
const (
	// ReasonRotationStarted: a new previous secret appeared under "<key>.previous"; both keys sign until the
	// expiry the Event names.
	ReasonRotationStarted = "RotationStarted"
	// ReasonRotationFinished: the previous secret's overlap ended; only the current secret signs.
	ReasonRotationFinished = "RotationFinished"
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
	// ReasonSecretNotLabeled: spec.signing.secretRef names a Secret without LabelSigningSecret=true, so the
	// operator, which watches only Secrets carrying that label, may not use it (Ready=False; the message gives the
	// kubectl label command).
	ReasonSecretNotLabeled = "SecretNotLabeled"
	// ReasonSecretInvalid: the secret value is unusable for the scheme, e.g. not in whsec_ form (Ready=False).
	ReasonSecretInvalid = "SecretInvalid"
	// ReasonInvalidHeader: a spec.headers value holds a control character (such as CR or LF) that HTTP cannot
	// carry (Ready=False).
	ReasonInvalidHeader = "InvalidHeader"
	// ReasonInvalidFilter: spec.filter.expression does not compile (the message quotes the compiler), does not
	// evaluate to a bool, or always costs more than the limit: no event is delivered to the subscription until it
	// is fixed, and its deliveries wait (Ready=False).
	ReasonInvalidFilter = "InvalidFilter"
	// ReasonInvalidOrderingKey: spec.ordering.key does not compile (the message quotes the compiler), does not
	// evaluate to a string or a number, or always costs more than the limit: its matches become deliveries under
	// the key "" and wait until it is fixed (Ready=False).
	ReasonInvalidOrderingKey = "InvalidOrderingKey"
	// ReasonPaused: spec.paused is true; deliveries wait, nothing is dropped (Ready=False).
	ReasonPaused = "Paused"
	// ReasonEndpointGone: the endpoint answered 410 Gone and spec.circuitBreaker.disableOnGone is set: deliveries
	// wait, nothing is dropped, until the spec changes (Ready=False, a Warning Event).
	ReasonEndpointGone = "EndpointGone"
	// ReasonTLSNotFound: a Secret or ConfigMap named in spec.tls does not exist (Ready=False).
	ReasonTLSNotFound = "TLSNotFound"
	// ReasonTLSNotLabeled: a Secret or ConfigMap named in spec.tls lacks the label the operator's cache selects
	// (LabelSigningSecret on Secrets, LabelCABundle on ConfigMaps), so it may not be used (Ready=False; the message
	// gives the kubectl label command).
	ReasonTLSNotLabeled = "TLSNotLabeled"
	// ReasonTLSInvalid: what spec.tls names is unusable: a key is missing, the PEM does not parse, or tls.key does
	// not match tls.crt (Ready=False).
	ReasonTLSInvalid = "TLSInvalid"
)

// Reasons on the CircuitOpen condition of a WebhookSubscription (and of its Events).
const (
	// ReasonCircuitOpened: failed attempts opened the circuit (CircuitOpen=True, a Warning Event).
	ReasonCircuitOpened = "EndpointFailing"
	// ReasonCircuitClosed: a probe succeeded; the deliveries that waited drain at spec.circuitBreaker.drainPerSecond
	// (CircuitOpen=False, a Normal Event).
	ReasonCircuitClosed = "EndpointRecovered"
	// ReasonCircuitOpen: a delivery waits for its subscription's open circuit (Delivered=False, waits).
	ReasonCircuitOpen = "CircuitOpen"
)

// Reasons on the DeliveriesRefused condition of a WebhookSubscription (and of its Warning Events).
const (
	// ReasonAdmissionDenied: an admission policy or webhook denied the delivery (DeliveriesRefused=True).
	ReasonAdmissionDenied = "AdmissionDenied"
	// ReasonDeliveryInvalid: the API server found the delivery invalid, e.g. the event is too large for an object
	// (DeliveriesRefused=True).
	ReasonDeliveryInvalid = "DeliveryInvalid"
	// ReasonDeliveryForbidden: the operator may not create deliveries in this namespace (its RBAC, or another
	// authorizer), though it may in others (DeliveriesRefused=True).
	ReasonDeliveryForbidden = "Forbidden"
	// ReasonQuotaExceeded: a ResourceQuota in the namespace is full (DeliveriesRefused=True).
	ReasonQuotaExceeded = "QuotaExceeded"
	// ReasonNamespaceTerminating: the namespace is being deleted (DeliveriesRefused=True).
	ReasonNamespaceTerminating = "NamespaceTerminating"
	// ReasonDeliveriesCreated: deliveries are created again (DeliveriesRefused=False).
	ReasonDeliveriesCreated = "DeliveriesCreated"
	// ReasonUnfinishedCapReached: the subscription, or the cluster, has as many unfinished WebhookDeliveries as its
	// cap allows. On Backlogged=True: new matches are parked in the ledger's database. On DeliveriesRefused=True
	// (no ledger configured): new matches are refused and not delivered to this subscription.
	ReasonUnfinishedCapReached = "UnfinishedCapReached"
)

// Reasons on the Backlogged condition of a WebhookSubscription besides ReasonUnfinishedCapReached.
const (
	// ReasonBacklogDrained: every parked match of the subscription became a delivery (Backlogged=False, and a
	// Normal Event).
	ReasonBacklogDrained = "BacklogDrained"
	// ReasonEndpointUnavailable: matches were parked, below the caps, because the subscription's circuit was open
	// or its endpoint's attempts hung (with a ledger, such a match is a row rather than an object that would
	// only wait); the matches after them are parked behind them, so it gets its events in order.
	ReasonEndpointUnavailable = "EndpointUnavailable"
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
	// ReasonWaitingForPredecessor: the subscription orders its deliveries (spec.ordering) and an earlier delivery
	// of the same key, named in the message, is not finished (or is Failed, with onExhausted Block); the delivery
	// waits without spending a retry (Delivered=False, phase kept).
	ReasonWaitingForPredecessor = "WaitingForPredecessor"
	// ReasonWaitingForSource: the subscription orders its deliveries and the source has not yet acknowledged every
	// event before this one, so an earlier delivery of its key may still be on its way; it waits without spending
	// a retry (Delivered=False, phase kept).
	ReasonWaitingForSource = "WaitingForSource"
	// ReasonRateLimited: the subscription's spec.rateLimit is used up; the delivery's attempt is booked for a later
	// start and waits without spending a retry (Delivered=False, phase kept). Written only when the wait is long
	// enough to be seen (rateLimitNote); the attempt then replaces it.
	ReasonRateLimited = "RateLimited"
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
	// ReplayValuePrefix starts the AnnotationReplay value a WebhookReplay sets on the deliveries it replays,
	// followed by "<name>/<uid>/<attempts>" (ReplayValue): the value marks the delivery as sent by that replay,
	// which survives an operator restart, and lets the delivery controller hold the replay to the WebhookReplay's
	// own rate instead of the per-subscription replay limits.
	ReplayValuePrefix = "WebhookReplay/"
	// AnnotationFirstAttempt carries the outcome of the first attempt, made by ingest before the delivery
	// existed, so the one create that makes the delivery durable also records that attempt; the delivery
	// controller moves it into status. Set by Hookpost only.
	AnnotationFirstAttempt = "webhooks.hookpost.io/first-attempt"
	// AnnotationTenants, on a Namespace, grants it tenants under tenant isolation (--tenant-isolation): a
	// comma-separated list of tenant ids whose events subscriptions in the namespace may receive, or "*" for every
	// tenant and for events without one. Set by a cluster admin: changing a Namespace's metadata takes the
	// cluster-scoped "update namespaces" permission, which the built-in admin and edit roles do not grant.
	AnnotationTenants = "webhooks.hookpost.io/tenants"
	// AnnotationAllowCIDRs, on a Namespace, allows its subscriptions internal destinations (private, loopback,
	// link-local, ...) the SSRF guard refuses by default: CIDR ranges or single addresses, comma-separated. Only
	// that namespace's deliveries may reach them (the operator's --allow-cidr opens a range to every namespace).
	// Set by a cluster admin, like AnnotationTenants.
	AnnotationAllowCIDRs = "webhooks.hookpost.io/allow-cidrs"
	// AnnotationShowInternalResponses, on a Namespace, set to "true", keeps the body of answers from internal
	// addresses in its deliveries' status and the ledger; by default they are withheld, since they may carry what
	// an internal service says about itself. Set by a cluster admin.
	AnnotationShowInternalResponses = "webhooks.hookpost.io/show-internal-responses"
	// AnnotationSeal is the operator's HMAC over a delivery it created (see docs/subscriptions.md, "Who may send
	// real events"): a delivery without a valid seal is sent as a test event. Set by Hookpost only.
	AnnotationSeal = "webhooks.hookpost.io/seal"
	// LabelSigningSecret, set to "true", marks a Secret Hookpost may read as a signing secret: the Secrets it
	// generates carry it, and a Secret named in spec.signing.secretRef must carry it too, as must the Secrets
	// spec.tls names (client certificate, CA bundle). The operator's cache watches only Secrets with this label, so
	// it never holds the other Secrets of the cluster.
	LabelSigningSecret = "webhooks.hookpost.io/signing-secret"
	// LabelCABundle, set to "true", marks a ConfigMap Hookpost may read as a CA bundle (spec.tls.caBundleRef
	// configMapName). The operator's cache watches only ConfigMaps with this label.
	LabelCABundle = "webhooks.hookpost.io/ca-bundle"
	// LabelSubscription names a delivery's subscription.
	LabelSubscription = "webhooks.hookpost.io/subscription"
	// LabelEventType holds a delivery's event type (dots kept; label values allow them).
	LabelEventType = "webhooks.hookpost.io/event-type"
	// LabelOrderingKey holds OrderingKeyHash of an ordered delivery's subscription and key, so one key's
	// deliveries can be listed: kubectl get whdel -l webhooks.hookpost.io/ordering-key=<hash>.
	LabelOrderingKey = "webhooks.hookpost.io/ordering-key"
	// LabelTest marks test deliveries.
	LabelTest = "webhooks.hookpost.io/test"
)
