package ingest

import (
	"errors"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TestRefusal is the table of create errors that are set aside instead of holding back the whole source.
func TestRefusal(t *testing.T) {
	gr := schema.GroupResource{Group: "webhooks.hookpost.io", Resource: "webhookdeliveries"}
	terminating := &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: 403, Reason: metav1.StatusReasonForbidden,
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause}}},
		Message: `unable to create new content in namespace t1 because it is being terminated`,
	}}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"invalid object", apierrors.NewInvalid(schema.GroupKind{Kind: "WebhookDelivery"}, "d", field.ErrorList{field.TooLong(field.NewPath("spec", "event", "tenantID"), "", 253)}), "invalid"},
		{"namespace being deleted", terminating, "namespaceTerminating"},
		{"quota full", apierrors.NewForbidden(gr, "d", errors.New("exceeded quota: deliveries, requested: count/webhookdeliveries=1")), "quotaExceeded"},
		{"admission policy, reason Forbidden", apierrors.NewForbidden(gr, "d", errors.New(`ValidatingAdmissionPolicy 'no-deliveries' with binding 'no-deliveries' denied request: not here`)), "admissionDenied"},
		{"admission policy, reason Invalid", apierrors.NewInvalid(schema.GroupKind{Kind: "WebhookDelivery"}, "d", field.ErrorList{field.Forbidden(field.NewPath(""), `ValidatingAdmissionPolicy 'no-deliveries' with binding 'no-deliveries' denied request: not here`)}), "admissionDenied"},
		{"admission webhook", apierrors.NewForbidden(gr, "d", errors.New(`admission webhook "deny.example.com" denied the request: not here`)), "admissionDenied"},
		{"admission webhook that cannot be called: retry", apierrors.NewInternalError(errors.New(`failed calling webhook "deny.example.com": connection refused`)), ""},
		{"RBAC: the operator is misconfigured, so wait for a fix", apierrors.NewForbidden(gr, "d", errors.New(`User "system:serviceaccount:hookpost:hookpost" cannot create resource "webhookdeliveries"`)), ""},
		{"server timeout", apierrors.NewServerTimeout(gr, "create", 1), ""},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refusal(tc.err); got != tc.want {
				t.Fatalf("refusal(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

// TestTruncateKeepsValidUTF8: the API server's message goes into conditions and Event notes, which must hold valid
// UTF-8 within their limits.
func TestTruncateKeepsValidUTF8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc…"},
		{"ab€cd", 4, "ab…"}, // € is 3 bytes: cut before it, not inside
	} {
		got := truncate(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
