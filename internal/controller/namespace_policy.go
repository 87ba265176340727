package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/netguard"
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

// ReachOf reads what a namespace's subscriptions may reach beyond the SSRF guard from its annotations
// (AnnotationAllowCIDRs, AnnotationShowInternalResponses). nil (the namespace could not be read) allows nothing
// more. An entry that is not a range is skipped and named in Reach.Ignored, which a refusal's message carries.
func ReachOf(ns *corev1.Namespace) delivery.Reach {
	var r delivery.Reach
	if ns == nil {
		return r
	}
	r.ShowInternalResponses = ns.Annotations[hookpostv1.AnnotationShowInternalResponses] == "true"
	var bad []string
	for _, v := range strings.Split(ns.Annotations[hookpostv1.AnnotationAllowCIDRs], ",") {
		if strings.TrimSpace(v) == "" {
			continue
		}
		p, err := netguard.ParseCIDR(v)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q", strings.TrimSpace(v)))
			continue
		}
		r.AllowCIDRs = append(r.AllowCIDRs, p)
	}
	if len(bad) > 0 {
		r.Ignored = fmt.Sprintf("namespace %s's %s entries %s are not CIDR ranges or addresses and were ignored; a cluster admin fixes the annotation",
			ns.Name, hookpostv1.AnnotationAllowCIDRs, strings.Join(bad, ", "))
	}
	return r
}

// ReadNamespace reads a namespace for its policy (tenant grant, reach) from r, the manager's cache, read-only;
// nil and no error when it does not exist.
func ReadNamespace(ctx context.Context, r client.Reader, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: name}, ns, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read namespace %s: %w", name, err)
	}
	return ns, nil
}
