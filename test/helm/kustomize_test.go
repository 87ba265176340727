package helm

import (
	"os/exec"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

func TestKustomizeDefaultApplies(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is not on PATH: %v", err)
	}
	out, err := runCommand(t, kubectl, "kustomize", "config/default")
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeManifests(t, out)

	d := convert[appsv1.Deployment](t, find(t, objs, "Deployment"))
	if d.Namespace != "hookpost-system" {
		t.Errorf("Deployment in namespace %q, want hookpost-system", d.Namespace)
	}
	if got := tenantIsolation(checkManagerDeployment(t, d)); got != "true" {
		t.Errorf("kustomize runs with tenant isolation %q, want true: it is off only by explicit choice", got)
	}
	binding := convert[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding"))
	sa := find(t, objs, "ServiceAccount")
	if binding.RoleRef.Name != find(t, objs, "ClusterRole").GetName() ||
		len(binding.Subjects) != 1 || binding.Subjects[0].Name != sa.GetName() || binding.Subjects[0].Namespace != sa.GetNamespace() {
		t.Errorf("ClusterRoleBinding %+v does not bind the ClusterRole to ServiceAccount %s/%s", binding, sa.GetNamespace(), sa.GetName())
	}
	if d.Spec.Template.Spec.ServiceAccountName != sa.GetName() {
		t.Errorf("Deployment runs as %q, want %q", d.Spec.Template.Spec.ServiceAccountName, sa.GetName())
	}
	if got, want := kinds(objs)["CustomResourceDefinition"], generatedCRDs(t); got != want {
		t.Errorf("config/default holds %d CRDs, config/crd/bases %d: list every one in config/crd/kustomization.yaml", got, want)
	}

	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if o := find(t, objs, kind); o.GetNamespace() != "" {
			t.Errorf("%s %s is cluster-scoped but has namespace %q", kind, o.GetName(), o.GetNamespace())
		}
	}

	createNamespace(t, "hookpost-system")
	dryRunApply(t, objs)
}
