package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeliveryPhase is where a delivery is in its life.
// +kubebuilder:validation:Enum=Pending;Retrying;Succeeded;Failed
type DeliveryPhase string

const (
	// DeliveryPending: no attempt made yet (or held by a paused subscription).
	DeliveryPending DeliveryPhase = "Pending"
	// DeliveryRetrying: an attempt failed; the next is due at status.nextAttemptTime.
	DeliveryRetrying DeliveryPhase = "Retrying"
	// DeliverySucceeded: a receiver answered 2xx.
	DeliverySucceeded DeliveryPhase = "Succeeded"
	// DeliveryFailed: retries are exhausted or the receiver rejected the event for good.
	DeliveryFailed DeliveryPhase = "Failed"
)

// Finished reports whether no further attempt will be made without a replay.
func (p DeliveryPhase) Finished() bool { return p == DeliverySucceeded || p == DeliveryFailed }

// WebhookDeliverySpec is one event for one subscription. It is immutable: a delivery records what was sent.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: a WebhookDelivery records one event for one subscription; create a new delivery, or set the webhooks.hookpost.io/replay annotation to send this one again"
type WebhookDeliverySpec struct {
	// subscriptionName is the WebhookSubscription, in the same namespace, this delivery is for.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	SubscriptionName string `json:"subscriptionName"`

	// event describes the event being delivered.
	// +required
	Event EventMeta `json:"event"`

	// data is the event's JSON, any shape; it becomes data (Envelope), payload (Collection), data (CloudEvents)
	// or the body (CloudEventsBinary).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +optional
	Data *apiextensionsv1.JSON `json:"data,omitempty"`

	// ordering places the delivery in its key's sequence when its subscription has spec.ordering: it is sent only
	// once the source has acknowledged every event before it and no earlier delivery of its key is unfinished.
	// Set by Hookpost only.
	// +optional
	Ordering *DeliveryOrdering `json:"ordering,omitempty"`

	// test marks a test event: delivered like any other, with X-Hookpost-Test: true.
	// +optional
	Test bool `json:"test,omitempty"`
}

// DeliveryOrdering is where a delivery stands in its ordering key's sequence.
type DeliveryOrdering struct {
	// key is the value of the subscription's spec.ordering.key for the event ("" when it failed or was empty);
	// a value longer than 253 bytes is kept as "sha256:" and its hex digest.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`

	// source is the event's source: postgres (the outbox) or nats (JetStream).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Source string `json:"source"`

	// position is the event's place in its source: the outbox row's id, or the JetStream stream sequence.
	// +kubebuilder:validation:Minimum=0
	// +required
	Position int64 `json:"position"`
}

// EventMeta identifies an event.
type EventMeta struct {
	// id is the event's unique id, sent as X-Event-Id (and webhook-id); receivers de-duplicate on it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	ID string `json:"id"`

	// type is the event type, such as order.created.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Type string `json:"type"`

	// tenantID is the tenant the event belongs to; a numeric id is sent as a JSON number in Envelope format.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TenantID string `json:"tenantID,omitempty"`

	// collection is the collection the event happened in (Collection format).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Collection string `json:"collection,omitempty"`

	// occurredAt is when the event happened; it is the body's timestamp, so every retry sends the same bytes.
	// +required
	OccurredAt metav1.Time `json:"occurredAt"`
}

// AttemptRecord is one HTTP attempt.
type AttemptRecord struct {
	// number is the attempt's number, from 1.
	Number int32 `json:"number"`

	// time is when the attempt started.
	Time metav1.Time `json:"time"`

	// duration is how long the attempt took.
	// +optional
	Duration metav1.Duration `json:"duration,omitempty"`

	// statusCode is the HTTP status the receiver answered; absent when there was no answer.
	// +optional
	StatusCode int32 `json:"statusCode,omitempty"`

	// error says why the attempt failed.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Error string `json:"error,omitempty"`

	// responseBody is the first KiB of the receiver's answer.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	ResponseBody string `json:"responseBody,omitempty"`
}

// WebhookDeliveryStatus is the delivery log of one event for one subscription.
type WebhookDeliveryStatus struct {
	// phase is Pending, Retrying, Succeeded or Failed.
	// +optional
	Phase DeliveryPhase `json:"phase,omitempty"`

	// attempts counts attempts made, replays included.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// lastAttempt is the most recent attempt.
	// +optional
	LastAttempt *AttemptRecord `json:"lastAttempt,omitempty"`

	// history holds the last 10 attempts, oldest first. A retry schedule may allow more (replays add more
	// still): attemptsNotInHistory counts the older ones left out, and the delivery ledger, when the operator
	// has one, keeps every attempt (kubectl hookpost history --event <id>).
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	// +optional
	History []AttemptRecord `json:"history,omitempty"`

	// attemptsNotInHistory is how many of the oldest attempts history no longer holds (attempts minus the
	// length of history); 0 while every attempt is in history.
	// +kubebuilder:validation:Minimum=0
	// +optional
	AttemptsNotInHistory int32 `json:"attemptsNotInHistory,omitempty"`

	// nextAttemptTime is when the next attempt is due, while Retrying.
	// +optional
	NextAttemptTime *metav1.Time `json:"nextAttemptTime,omitempty"`

	// completionTime is when the delivery Succeeded or Failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// attemptsBeforeReplay is how many attempts were made before the latest replay; the retry schedule
	// restarts after a replay.
	// +optional
	AttemptsBeforeReplay int32 `json:"attemptsBeforeReplay,omitempty"`

	// conditions: Delivered, with the reason it is not (yet).
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// WebhookDelivery is one event for one subscription and its delivery log: every attempt's status code, error,
// duration and the next retry time.
//
// Next Retry is a string column, the absolute RFC 3339 time: kubectl prints a date column as an age and shows
// <invalid> for any time in the future, and a relative "in 4m" kept in status would be stale between writes
// (docs/subscriptions.md#deliveries).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=hookpost,shortName=whdel
// +kubebuilder:selectablefield:JSONPath=`.status.phase`
// +kubebuilder:selectablefield:JSONPath=`.spec.subscriptionName`
// +kubebuilder:printcolumn:name="Subscription",type=string,JSONPath=`.spec.subscriptionName`
// +kubebuilder:printcolumn:name="Event",type=string,JSONPath=`.spec.event.type`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Attempts",type=integer,JSONPath=`.status.attempts`
// +kubebuilder:printcolumn:name="Code",type=integer,JSONPath=`.status.lastAttempt.statusCode`
// +kubebuilder:printcolumn:name="Next Retry",type=string,JSONPath=`.status.nextAttemptTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.spec.ordering.key`,description="The ordering key (spec.ordering.key of an ordered subscription)",priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Delivered")].reason`,description="The Delivered condition's reason: why the delivery is not delivered yet, such as WaitingForPredecessor",priority=1
// +kubebuilder:printcolumn:name="Event ID",type=string,JSONPath=`.spec.event.id`,priority=1
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.lastAttempt.error`,priority=1
// +kubebuilder:printcolumn:name="Not In History",type=integer,JSONPath=`.status.attemptsNotInHistory`,priority=1
type WebhookDelivery struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the event and the subscription it is for; immutable.
	// +required
	Spec WebhookDeliverySpec `json:"spec"`

	// status is the delivery log.
	// +optional
	Status WebhookDeliveryStatus `json:"status,omitempty"`
}

// WebhookDeliveryList is a list of WebhookDeliveries.
// +kubebuilder:object:root=true
type WebhookDeliveryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookDelivery `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WebhookDelivery{}, &WebhookDeliveryList{})
}
