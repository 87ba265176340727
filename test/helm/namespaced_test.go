package helm

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/signing"
	"github.com/hookpost/hookpost/test/fixtures"
)

// namespacedRuleResources are the resources the generated ClusterRole names that are not namespaced, and so stay
// in the small ClusterRole of rbac.scope=namespaced.
var namespacedRuleResources = []string{"namespaces", "selfsubjectaccessreviews"}

// TestChartNamespacedRBAC checks rbac.scope=namespaced: a Role and RoleBinding per watched namespace with the
// generated rules that name namespaced resources, a ClusterRole with only the cluster-scoped rest (no Secrets, no
// Hookpost objects), the seal Secret readable in the release namespace, and the manager told which namespaces.
func TestChartNamespacedRBAC(t *testing.T) {
	const ns = "hookpost-namespaced"
	objs := renderChart(t, ns, "--set", "rbac.scope=namespaced", "--set", "watchNamespaces={team-a,team-b}")

	generated, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var wantNamespaced, wantCluster []rbacv1.PolicyRule
	for _, r := range convert[rbacv1.ClusterRole](t, find(t, decodeManifests(t, generated), "ClusterRole")).Rules {
		// controller-gen merges resources with the same verbs into one rule (configmaps with namespaces): split it.
		var cluster, namespaced []string
		for _, res := range r.Resources {
			if slices.Contains(namespacedRuleResources, res) {
				cluster = append(cluster, res)
			} else {
				namespaced = append(namespaced, res)
			}
		}
		if len(cluster) > 0 {
			c := *r.DeepCopy()
			c.Resources = cluster
			wantCluster = append(wantCluster, c)
		}
		if len(namespaced) > 0 {
			n := *r.DeepCopy()
			n.Resources = namespaced
			wantNamespaced = append(wantNamespaced, n)
		}
	}

	roles := map[string]*rbacv1.Role{}
	bindings := map[string]*rbacv1.RoleBinding{}
	for _, o := range objs {
		switch o.GetKind() {
		case "Role":
			roles[o.GetNamespace()+"/"+o.GetName()] = convert[rbacv1.Role](t, o)
		case "RoleBinding":
			bindings[o.GetNamespace()+"/"+o.GetName()] = convert[rbacv1.RoleBinding](t, o)
		}
	}
	for _, watched := range []string{"team-a", "team-b"} {
		role, ok := roles[watched+"/hookpost-manager"]
		if !ok {
			t.Fatalf("no Role hookpost-manager in %s; rendered %v", watched, slices.Collect(maps.Keys(roles)))
		}
		if !reflect.DeepEqual(role.Rules, wantNamespaced) {
			t.Errorf("Role %s/hookpost-manager rules differ from config/rbac/role.yaml's namespaced ones: copy them into templates/namespaced-rbac.yaml\nchart: %+v\ngenerated: %+v", watched, role.Rules, wantNamespaced)
		}
		b, ok := bindings[watched+"/hookpost-manager"]
		if !ok || b.RoleRef.Kind != "Role" || b.RoleRef.Name != "hookpost-manager" || len(b.Subjects) != 1 || b.Subjects[0].Namespace != ns || b.Subjects[0].Name != "hookpost" {
			t.Errorf("RoleBinding %s/hookpost-manager %+v does not bind the Role to ServiceAccount %s/hookpost", watched, b, ns)
		}
	}
	seal, ok := roles[ns+"/hookpost-seal"]
	if !ok || !slices.ContainsFunc(seal.Rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "secrets") && slices.Contains(r.ResourceNames, controller.DefaultSealSecretName) && slices.Contains(r.Verbs, "get")
	}) {
		t.Errorf("no Role in the release namespace lets the operator read its seal Secret %s: %+v", controller.DefaultSealSecretName, seal)
	}

	for _, o := range objs {
		if o.GetKind() != "ClusterRole" {
			continue
		}
		cr := convert[rbacv1.ClusterRole](t, o)
		if !reflect.DeepEqual(cr.Rules, wantCluster) {
			t.Errorf("ClusterRole %s grants %+v, want only the cluster-scoped rules %+v", cr.Name, cr.Rules, wantCluster)
		}
		for _, r := range cr.Rules {
			if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") || slices.Contains(r.APIGroups, hookpostv1.GroupVersion.Group) {
				t.Errorf("ClusterRole %s grants %v cluster-wide in namespaced mode", cr.Name, r.Resources)
			}
		}
	}

	c := checkManagerDeployment(t, convert[appsv1.Deployment](t, find(t, objs, "Deployment")))
	if got := envVar(t, c, "HOOKPOST_WATCH_NAMESPACES").Value; got != "team-a,team-b" {
		t.Errorf("HOOKPOST_WATCH_NAMESPACES %q, want team-a,team-b", got)
	}
	createNamespace(t, ns)
	createNamespace(t, "team-a")
	createNamespace(t, "team-b")
	dryRunApply(t, objs)

	if out, err := runCommand(t, helmBinary(t), "template", "hookpost", chart, "--set", "rbac.scope=namespaced"); err == nil {
		t.Errorf("rbac.scope=namespaced without watchNamespaces rendered:\n%s", out)
	}
}

// TestNamespacedOperatorRunsWithTheChartsRoles applies the RBAC the chart renders for rbac.scope=namespaced and
// runs the operator's controllers as its ServiceAccount (impersonated), with --watch-namespaces' cache: in the
// watched namespace it generates and reads signing Secrets and delivers a signed event; a subscription in a
// namespace it does not watch is left alone.
func TestNamespacedOperatorRunsWithTheChartsRoles(t *testing.T) {
	const release, watched, other = "hookpost-ns-run", "run-watched", "run-other"
	ctx := t.Context()
	objs := renderChart(t, release, "--set", "rbac.scope=namespaced", "--set", "watchNamespaces={"+watched+"}")
	for _, ns := range []string{release, watched, other} {
		createNamespace(t, ns)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if err := k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.ForceOwnership, client.FieldOwner("hookpost-rbac-test")); err != nil {
				t.Fatalf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := hookpostv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// Tenant isolation is on, as by default: grant the watched namespace every tenant.
	wns := &corev1.Namespace{}
	if err := admin.Get(ctx, client.ObjectKey{Name: watched}, wns); err != nil {
		t.Fatal(err)
	}
	wns.Annotations = map[string]string{hookpostv1.AnnotationTenants: "*"}
	if err := admin.Update(ctx, wns); err != nil {
		t.Fatal(err)
	}

	sa := rest.CopyConfig(restConfig)
	sa.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + release + ":hookpost",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + release, "system:authenticated"},
	}
	saClient, err := client.New(sa, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := saClient.List(ctx, &corev1.SecretList{}, client.InNamespace(other)); err == nil {
		t.Fatalf("the operator's ServiceAccount may list Secrets in %s, a namespace it does not watch", other)
	}
	key, err := controller.LoadSealKey(ctx, saClient, release, controller.DefaultSealSecretName)
	if err != nil {
		t.Fatalf("the operator's ServiceAccount cannot create and read its seal Secret: %v", err)
	}
	sealer := controller.NewSealer(key)

	mgr, err := ctrl.NewManager(sa, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: controller.WatchNamespaces(controller.CacheOptions(true), []string{watched})})
	if err != nil {
		t.Fatal(err)
	}
	if err := controller.Setup(ctx, mgr, controller.Options{Clock: clock.RealClock{}, Sender: delivery.NewSender(delivery.SenderOptions{}),
		UserAgent: "Hookpost/test", MaxRetryAfter: time.Hour, DeliveryWorkers: 2, TenantIsolation: true, Sealer: sealer}); err != nil {
		t.Fatal(err)
	}
	mgrCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- r:
			bodies <- b
		default:
		}
	}))
	t.Cleanup(receiver.Close)

	const secret = "a signing secret for the namespaced run"
	for _, o := range []client.Object{
		fixtures.SigningSecret(watched, "signing", map[string]string{"secret": secret}),
		fixtures.Subscription(watched, "named", receiver.URL+"/hook", fixtures.InsecureHTTP(), fixtures.SecretRef("signing", "secret")),
		fixtures.Subscription(watched, "generated", "https://example.com/hook"),
		fixtures.Subscription(other, "unwatched", "https://example.com/hook"),
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	ready := func(ns, name string) *metav1.Condition {
		sub := &hookpostv1.WebhookSubscription{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sub); err != nil {
			t.Fatal(err)
		}
		return meta.FindStatusCondition(sub.Status.Conditions, hookpostv1.ConditionReady)
	}
	for name, reason := range map[string]string{"named": hookpostv1.ReasonSecretReady, "generated": hookpostv1.ReasonSecretGenerated} {
		waitUntil(t, "subscription "+name+" Ready ("+reason+")", func() bool {
			c := ready(watched, name)
			return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
		})
	}

	d := fixtures.Delivery(watched, "named", "evt-namespaced-1", "order.created", map[string]string{"id": "1"}, fixtures.SealedBy(sealer))
	if err := admin.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if err := signing.VerifyHMACHex([]byte(secret), <-bodies, r.Header.Get("X-Webhook-Signature")); err != nil {
			t.Errorf("delivery not signed with the labelled Secret: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the delivery in the watched namespace never reached the receiver")
	}
	waitUntil(t, "the delivery Succeeded", func() bool {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			t.Fatal(err)
		}
		return d.Status.Phase == hookpostv1.DeliverySucceeded
	})

	// By now the manager has long reconciled everything it watches; the other namespace's subscription was
	// created before the deliveries above and has no status, and no generated Secret.
	if c := ready(other, "unwatched"); c != nil {
		t.Errorf("subscription in the unwatched namespace %s was reconciled: %+v", other, c)
	}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: other, Name: "unwatched-signing-secret"}, &corev1.Secret{}); err == nil {
		t.Errorf("a signing Secret was generated in the unwatched namespace %s", other)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
