package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bounds of a WebhookReplay (docs/operations.md, "Limits").
const (
	// DefaultReplayPerSecond is spec.rate.perSecond when unset.
	DefaultReplayPerSecond = 10
	// MaxReplayPerSecond is the highest spec.rate.perSecond.
	MaxReplayPerSecond = 100
	// DefaultReplayLimit is spec.limit when unset.
	DefaultReplayLimit = 1000
	// MaxReplayLimit is the highest spec.limit: one WebhookReplay replays at most this many deliveries.
	MaxReplayLimit = 10000
)

// DeliveredReason is a reason of a finished delivery's Delivered condition, as spec.selector.reasons selects it.
// +kubebuilder:validation:Enum=Succeeded;RetriesExhausted;Rejected;Gone;InvalidRequest
type DeliveredReason string

// ReplaySourceKind names an event source a WebhookReplay re-reads.
// +kubebuilder:validation:Enum=Outbox;JetStream
type ReplaySourceKind string

const (
	// ReplaySourceOutbox re-reads the PostgreSQL outbox's done rows (the operator's --postgres-dsn).
	ReplaySourceOutbox ReplaySourceKind = "Outbox"
	// ReplaySourceJetStream re-reads the JetStream stream (the operator's --nats-url).
	ReplaySourceJetStream ReplaySourceKind = "JetStream"
)

// WebhookReplaySpec says which deliveries to send again and how fast. It is immutable: a WebhookReplay records
// one bulk replay; create another to replay again.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: a WebhookReplay records one bulk replay; create a new WebhookReplay to replay again"
// +kubebuilder:validation:XValidation:rule="!has(self.source) || (!has(self.selector.phases) && !has(self.selector.reasons))",message="spec.selector.phases and spec.selector.reasons select deliveries by how they ended, and spec.source re-reads events that have no outcome yet: remove them, or remove spec.source"
type WebhookReplaySpec struct {
	// selector says which WebhookDeliveries of the namespace are replayed; every field given must match. With
	// spec.source, it selects among the events re-read from the source (by subscription, event type, tenant and
	// event time).
	// +required
	Selector ReplaySelector `json:"selector"`

	// source, when set, re-reads an event source from a point in time instead of selecting existing deliveries:
	// each event taken in since then is matched against the namespace's subscriptions as ingest matches events
	// (patterns, filters, tenant isolation), and every match is sent again; a match whose WebhookDelivery exists
	// replays it, one without makes it. Unset: the namespace's deliveries are selected, with those pruned by the
	// history limits from the ledger when the operator has one.
	// +optional
	Source *ReplaySource `json:"source,omitempty"`

	// rate bounds how fast the selected deliveries are replayed.
	// +kubebuilder:default={}
	// +optional
	Rate ReplayRate `json:"rate,omitempty"`

	// limit is the most deliveries this replay sends: when more match, those with the oldest events are replayed
	// and status.selected says how many.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	Limit int32 `json:"limit,omitempty"`
}

// ReplaySource is an event source re-read from a point in time.
type ReplaySource struct {
	// kind is the source to re-read: Outbox (the outbox table's done rows, which the operator keeps for
	// --postgres-retention) or JetStream (the stream's messages, for as long as the stream keeps them). The
	// operator must read that source.
	// +required
	Kind ReplaySourceKind `json:"kind"`

	// since re-reads the events the source took in at or after this time: outbox rows Hookpost processed since
	// then, stream messages stored since then. Events taken in after the WebhookReplay was created are left out.
	// +required
	Since metav1.Time `json:"since"`
}

// ReplaySelector selects WebhookDeliveries. Only deliveries that existed when the WebhookReplay was created are
// selected.
// +kubebuilder:validation:XValidation:rule="!has(self.from) || !has(self.to) || self.from < self.to",message="spec.selector.from must be before spec.selector.to"
type ReplaySelector struct {
	// subscriptionName selects the deliveries of this WebhookSubscription; unset selects every subscription's
	// deliveries in the namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SubscriptionName string `json:"subscriptionName,omitempty"`

	// phases selects deliveries in these phases, such as [Failed] for the dead letters; unset selects every phase.
	// +kubebuilder:validation:MaxItems=4
	// +listType=set
	// +optional
	Phases []DeliveryPhase `json:"phases,omitempty"`

	// reasons selects deliveries whose Delivered condition has one of these reasons (the outcome of a finished
	// delivery: Succeeded, RetriesExhausted, Rejected, Gone or InvalidRequest); unset selects every reason.
	// +kubebuilder:validation:MaxItems=5
	// +listType=set
	// +optional
	Reasons []DeliveredReason `json:"reasons,omitempty"`

	// eventTypes selects deliveries of these exact event types; unset selects every type.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	EventTypes []string `json:"eventTypes,omitempty"`

	// tenants selects deliveries of events of these tenant ids; unset selects every tenant.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Tenants []string `json:"tenants,omitempty"`

	// from selects deliveries whose event occurred (spec.event.occurredAt) at or after this time.
	// +optional
	From *metav1.Time `json:"from,omitempty"`

	// to selects deliveries whose event occurred before this time.
	// +optional
	To *metav1.Time `json:"to,omitempty"`
}

// ReplayRate bounds how fast a WebhookReplay sends.
type ReplayRate struct {
	// perSecond is how many deliveries are replayed per second at most. A WebhookReplay's replays are not held
	// to the operator's per-subscription replay limits (--replay-rate): this is their bound.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	PerSecond int32 `json:"perSecond,omitempty"`
}

// WebhookReplayStatus is the progress of a bulk replay.
type WebhookReplayStatus struct {
	// selected is how many deliveries the replay selected (at most spec.limit), fixed when it starts.
	// +optional
	Selected int32 `json:"selected,omitempty"`

	// sent is how many of them have been handed to the delivery controller to send again.
	// +optional
	Sent int32 `json:"sent,omitempty"`

	// succeeded is how many replayed deliveries a receiver accepted.
	// +optional
	Succeeded int32 `json:"succeeded,omitempty"`

	// failed is how many replayed deliveries failed again (retries exhausted, rejected, gone).
	// +optional
	Failed int32 `json:"failed,omitempty"`

	// startTime is when the replay selected its deliveries.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when every replayed delivery had finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// conditions: Complete, with the reason.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// WebhookReplay sends a selection of a namespace's WebhookDeliveries again, at a declared rate, and reports how
// the replayed deliveries ended. Creating one is how a team replays in bulk; RBAC on webhookreplays says who may.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=hookpost,shortName=whrep
// +kubebuilder:printcolumn:name="Subscription",type=string,JSONPath=`.spec.selector.subscriptionName`
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.spec.source.kind`,priority=1
// +kubebuilder:printcolumn:name="Selected",type=integer,JSONPath=`.status.selected`
// +kubebuilder:printcolumn:name="Sent",type=integer,JSONPath=`.status.sent`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeeded`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Complete",type=string,JSONPath=`.status.conditions[?(@.type=="Complete")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WebhookReplay struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec selects the deliveries and the rate; immutable.
	// +required
	Spec WebhookReplaySpec `json:"spec"`

	// status is the replay's progress.
	// +optional
	Status WebhookReplayStatus `json:"status,omitempty"`
}

// WebhookReplayList is a list of WebhookReplays.
// +kubebuilder:object:root=true
type WebhookReplayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookReplay `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WebhookReplay{}, &WebhookReplayList{})
}
