package harness

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// CreateNamespaceForAllTenants creates a namespace granted every tenant (annotation
// webhooks.hookpost.io/tenants: "*"), as a cluster admin does for a namespace that may see all of them: the
// operator runs with tenant isolation on, its default, and matches no event to a namespace without a grant.
func CreateNamespaceForAllTenants(ctx context.Context, c client.Client, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Annotations: map[string]string{hookpostv1.AnnotationTenants: "*"}}}
	if err := c.Create(ctx, ns); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}
