// Package v1alpha1 is Hookpost's user-facing contract: the WebhookSubscription and WebhookDelivery kinds,
// their validation (markers and CEL rules) and the condition types and reasons they report.
//
// +kubebuilder:object:generate=true
// +groupName=webhooks.hookpost.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every Hookpost kind.
	GroupVersion = schema.GroupVersion{Group: "webhooks.hookpost.io", Version: "v1alpha1"}

	// SchemeBuilder registers the Hookpost kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Hookpost kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
