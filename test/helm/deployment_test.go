package helm

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// checkManagerDeployment asserts what the chart and the kustomize tree must agree on: leader election, probes,
// ports, resources and the restricted pod security profile.
func checkManagerDeployment(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want 1 container, got %d", len(pod.Containers))
	}
	c := &pod.Containers[0]
	if !slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("args %v lack --leader-elect", c.Args)
	}

	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod securityContext.seccompProfile is not RuntimeDefault")
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("container has no securityContext")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("container securityContext.runAsNonRoot is not true")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container securityContext.readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container securityContext.allowPrivilegeEscalation is not false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("container capabilities %+v, want drop [ALL] and no add", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("container securityContext.seccompProfile is not RuntimeDefault")
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["metrics"] != 8080 || ports["probes"] != 8081 {
		t.Errorf("container ports %v, want metrics 8080 and probes 8081", ports)
	}
	for _, probe := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if probe.probe == nil || probe.probe.HTTPGet == nil {
			t.Errorf("%s probe is not an HTTP GET", probe.name)
			continue
		}
		if g := probe.probe.HTTPGet; g.Path != probe.path || (g.Port.String() != "probes" && g.Port.IntValue() != 8081) {
			t.Errorf("%s probe GETs %s on %s, want %s on 8081", probe.name, g.Path, g.Port.String(), probe.path)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v lack cpu and memory requests or a memory limit", c.Resources)
	}
	return c
}

// envVar returns the container's variable name, failing the test if it is missing.
func envVar(t *testing.T, c *corev1.Container, name string) corev1.EnvVar {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("container has no env var %s", name)
	return corev1.EnvVar{}
}

func hasEnvVar(c *corev1.Container, name string) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
}

// tenantIsolation reports the --tenant-isolation the container runs with: the flag's value, else
// HOOKPOST_TENANT_ISOLATION, else the binary's default (on).
func tenantIsolation(c *corev1.Container) string {
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--tenant-isolation="); ok {
			return v
		}
	}
	for _, e := range c.Env {
		if e.Name == "HOOKPOST_TENANT_ISOLATION" {
			return e.Value
		}
	}
	return "true"
}
