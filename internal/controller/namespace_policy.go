package controller

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// allTenants is the AnnotationTenants value that grants every tenant, and events without one.
const allTenants = "*"

// TenantGrant is which tenants' events subscriptions in one namespace may receive under tenant isolation.
type TenantGrant struct {
	// Annotated is false when the namespace carries no AnnotationTenants: it is granted nothing.
	Annotated bool
	// All grants every tenant and events without a tenant.
	All bool
	// Tenants are the tenant ids granted by name.
	Tenants map[string]bool
}

// Allows reports whether an event of tenant (empty: no tenant) may reach the namespace. An event without a tenant
// reaches only namespaces granted every tenant: nothing says whose data it carries, so a namespace granted some
// tenants by name must not assume it is theirs.
func (g TenantGrant) Allows(tenant string) bool {
	return g.All || (tenant != "" && g.Tenants[tenant])
}

// TenantGrantOf reads a namespace's grant from its AnnotationTenants: ids separated by commas (spaces around them
// ignored, empty entries skipped), "*" anywhere in the list granting all.
func TenantGrantOf(ns *corev1.Namespace) TenantGrant {
	value, ok := ns.Annotations[hookpostv1.AnnotationTenants]
	g := TenantGrant{Annotated: ok}
	for _, t := range strings.Split(value, ",") {
		switch t = strings.TrimSpace(t); t {
		case "":
		case allTenants:
			g.All = true
		default:
			if g.Tenants == nil {
				g.Tenants = map[string]bool{}
			}
			g.Tenants[t] = true
		}
	}
	return g
}

// names lists the tenants granted by name, sorted, for messages.
func (g TenantGrant) names() []string {
	out := make([]string, 0, len(g.Tenants))
	for t := range g.Tenants {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
