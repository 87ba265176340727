package controller

import (
	"context"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
)

// The suite's API server authorizes with RBAC (envtest's default) and has the chart's delivery admission policy
// installed (BeforeSuite), so these specs see what a user of a cluster with the chart sees.
var _ = Describe("The delivery admission policy", func() {
	ctx := context.Background()
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	// clientAs is a client impersonating user, bound in the spec's namespace to the ClusterRole role.
	clientAs := func(user, role string) client.Client {
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role + "-" + filepath.Base(user)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		})).To(Succeed())
		c := rest.CopyConfig(cfg)
		c.Impersonate = rest.ImpersonationConfig{UserName: user}
		cl, err := client.New(c, client.Options{Scheme: k8sClient.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		return cl
	}
	ensureClusterRole := func(role *rbacv1.ClusterRole) {
		if err := k8sClient.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	}
	event := map[string]any{"order_id": 1}

	It("refuses a real delivery from a user who may create deliveries but lacks deliver-events, and admits a test one", func() {
		ensureClusterRole(&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "test-delivery-author"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{hookpostv1.GroupVersion.Group}, Resources: []string{"webhookdeliveries"}, Verbs: []string{"create", "get"}}},
		})
		alice := clientAs("alice", "test-delivery-author")

		// A dry run goes through admission and stores nothing, so it can be repeated until the API server has
		// compiled the policy (about a second after it was created).
		Eventually(func() error {
			return alice.Create(ctx, fixtures.Delivery(ns, "orders", "evt-forged", "order.paid", event, fixtures.Tenant("42")), client.DryRunAll)
		}).Should(MatchError(ContainSubstring("spec.test must be true")))
		err := alice.Create(ctx, fixtures.Delivery(ns, "orders", "evt-forged", "order.paid", event, fixtures.Tenant("42")))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(And(ContainSubstring("deliver-events"), ContainSubstring("spec.test: true")))

		Expect(alice.Create(ctx, fixtures.Delivery(ns, "orders", "evt-test", "order.paid", event, fixtures.Test()))).To(Succeed())
	})

	It("admits a real delivery from the operator's identity, with the ClusterRole the chart and kustomize bind to it", func() {
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		role := &rbacv1.ClusterRole{}
		Expect(yaml.Unmarshal(raw, role)).To(Succeed())
		role.Name = "test-" + role.Name
		ensureClusterRole(role)
		operator := clientAs("system:serviceaccount:hookpost-system:hookpost-manager", role.Name)

		Eventually(func() error {
			return operator.Create(ctx, fixtures.Delivery(ns, "orders", "evt-real", "order.paid", event), client.DryRunAll)
		}).Should(Succeed())
		Expect(operator.Create(ctx, fixtures.Delivery(ns, "orders", "evt-real", "order.paid", event))).To(Succeed())
	})

	It("keeps spec.test from being cleared after creation (spec is immutable)", func() {
		d := fixtures.Delivery(ns, "orders", "evt-flip", "order.paid", event, fixtures.Test())
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		patch := client.MergeFrom(d.DeepCopy())
		d.Spec.Test = false
		Expect(k8sClient.Patch(ctx, d, patch)).To(MatchError(ContainSubstring("spec is immutable")))
	})
})
