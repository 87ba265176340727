package controller

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

func namespaceWith(annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Annotations: annotations}}
}

func TestTenantGrantAllows(t *testing.T) {
	tests := []struct {
		name       string
		annotation *string
		tenant     string
		want       bool
	}{
		{name: "no annotation grants nothing", annotation: nil, tenant: "acme", want: false},
		{name: "no annotation: no untenanted events either", annotation: nil, tenant: "", want: false},
		{name: "empty annotation grants nothing", annotation: ptrTo(""), tenant: "acme", want: false},
		{name: "a granted tenant", annotation: ptrTo("acme"), tenant: "acme", want: true},
		{name: "another tenant", annotation: ptrTo("acme"), tenant: "globex", want: false},
		{name: "a list, spaces and empty entries ignored", annotation: ptrTo(" acme, ,globex "), tenant: "globex", want: true},
		{name: "an event without a tenant needs *", annotation: ptrTo("acme,globex"), tenant: "", want: false},
		{name: "* grants every tenant", annotation: ptrTo("*"), tenant: "umbrella", want: true},
		{name: "* grants untenanted events", annotation: ptrTo("acme,*"), tenant: "", want: true},
		{name: "tenant ids are case-sensitive", annotation: ptrTo("Acme"), tenant: "acme", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ann := map[string]string{}
			if tc.annotation != nil {
				ann[hookpostv1.AnnotationTenants] = *tc.annotation
			}
			if got := TenantGrantOf(namespaceWith(ann)).Allows(tc.tenant); got != tc.want {
				t.Errorf("Allows(%q) = %v, want %v", tc.tenant, got, tc.want)
			}
		})
	}
}

func TestTenantsCondition(t *testing.T) {
	tests := []struct {
		name        string
		annotation  *string
		filter      []string
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantMessage string
	}{
		{name: "no annotation", wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonNoTenantGrant,
			wantMessage: "kubectl annotate namespace shop webhooks.hookpost.io/tenants="},
		{name: "an empty grant", annotation: ptrTo(" , "), wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonNoTenantGrant,
			wantMessage: "granted no tenants"},
		{name: "granted by name", annotation: ptrTo("globex,acme"), wantStatus: metav1.ConditionTrue, wantReason: hookpostv1.ReasonTenantsGranted,
			wantMessage: "granted tenants acme, globex; events without a tenant are not delivered here"},
		{name: "granted all", annotation: ptrTo("*"), filter: []string{"umbrella"}, wantStatus: metav1.ConditionTrue,
			wantReason: hookpostv1.ReasonTenantsGranted, wantMessage: "granted every tenant"},
		{name: "a filter on a tenant not granted", annotation: ptrTo("acme"), filter: []string{"acme", "globex"},
			wantStatus: metav1.ConditionFalse, wantReason: hookpostv1.ReasonTenantNotGranted,
			wantMessage: "spec.filter.tenants names globex, which namespace shop is not granted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ann := map[string]string{}
			if tc.annotation != nil {
				ann[hookpostv1.AnnotationTenants] = *tc.annotation
			}
			sub := &hookpostv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders", Generation: 2}}
			if tc.filter != nil {
				sub.Spec.Filter = &hookpostv1.EventFilter{Tenants: tc.filter}
			}
			c := tenantsCondition(sub, TenantGrantOf(namespaceWith(ann)))
			if c.Type != hookpostv1.ConditionTenantsGranted || c.Status != tc.wantStatus || c.Reason != tc.wantReason ||
				c.ObservedGeneration != 2 || !strings.Contains(c.Message, tc.wantMessage) {
				t.Errorf("got %+v, want %s/%s with a message containing %q", c, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestReachOf(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		wantCIDRs   []string
		wantShow    bool
		wantIgnored string
	}{
		{name: "no annotations allow nothing more", annotations: nil},
		{name: "ranges and single addresses", annotations: map[string]string{hookpostv1.AnnotationAllowCIDRs: " 10.20.0.0/16 ,10.30.1.7,, fd00::/8"},
			wantCIDRs: []string{"10.20.0.0/16", "10.30.1.7/32", "fd00::/8"}},
		{name: "an entry that is not a range is named, the rest kept", annotations: map[string]string{hookpostv1.AnnotationAllowCIDRs: "10.0.0.0/8,10.0.0.0/33,intranet"},
			wantCIDRs: []string{"10.0.0.0/8"}, wantIgnored: `namespace shop's webhooks.hookpost.io/allow-cidrs entries "10.0.0.0/33", "intranet" are not CIDR ranges or addresses and were ignored`},
		{name: "internal answers shown only for exactly true", annotations: map[string]string{hookpostv1.AnnotationShowInternalResponses: "true"}, wantShow: true},
		{name: "any other value withholds them", annotations: map[string]string{hookpostv1.AnnotationShowInternalResponses: "yes"}, wantShow: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ReachOf(namespaceWith(tc.annotations))
			var got []string
			for _, p := range r.AllowCIDRs {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != strings.Join(tc.wantCIDRs, " ") || r.ShowInternalResponses != tc.wantShow || !strings.HasPrefix(r.Ignored, tc.wantIgnored) ||
				(tc.wantIgnored == "" && r.Ignored != "") {
				t.Errorf("ReachOf = %+v, want ranges %v, show %v, ignored %q", r, tc.wantCIDRs, tc.wantShow, tc.wantIgnored)
			}
		})
	}
	if r := ReachOf(nil); len(r.AllowCIDRs) != 0 || r.ShowInternalResponses {
		t.Errorf("ReachOf(nil) = %+v, want nothing allowed", r)
	}
}
