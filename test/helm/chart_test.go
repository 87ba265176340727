package helm

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const chart = "charts/hookpost"

func TestChartLint(t *testing.T) {
	helm := helmBinary(t)
	for _, args := range [][]string{
		{"lint", chart},
		{"lint", "--strict", chart},
		{"lint", "--strict", chart, "-f", "test/helm/testdata/postgres-values.yaml", "-f", "test/helm/testdata/nats-values.yaml", "-f", "test/helm/testdata/monitoring-values.yaml"},
	} {
		if out, err := runCommand(t, helm, args...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// renderChart runs helm template with the chart's CRDs included, as release "hookpost" in namespace.
func renderChart(t *testing.T, namespace string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	args = append([]string{"template", "hookpost", chart, "--namespace", namespace, "--include-crds"}, args...)
	out, err := runCommand(t, helmBinary(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	return decodeManifests(t, out)
}

func TestChartRendersAndApplies(t *testing.T) {
	cases := []struct {
		name   string
		values []string
		check  func(t *testing.T, objs []*unstructured.Unstructured, c *corev1.Container)
	}{{
		name: "defaults",
		check: func(t *testing.T, objs []*unstructured.Unstructured, c *corev1.Container) {
			want := map[string]int{
				"CustomResourceDefinition": generatedCRDs(t), "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
				"Role": 1, "RoleBinding": 1, "Service": 1, "Deployment": 1,
				"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1,
			}
			if got := kinds(objs); !reflect.DeepEqual(got, want) {
				t.Errorf("rendered kinds %v, want %v", got, want)
			}
			d := convert[appsv1.Deployment](t, find(t, objs, "Deployment"))
			if *d.Spec.Replicas != 1 {
				t.Errorf("replicas %d, want 1", *d.Spec.Replicas)
			}
			for _, name := range []string{"HOOKPOST_POSTGRES_DSN", "HOOKPOST_NATS_URL", "HOOKPOST_ALLOW_CIDRS", "HOOKPOST_DENY_CIDRS"} {
				if hasEnvVar(c, name) {
					t.Errorf("%s is set although its value is off by default", name)
				}
			}
			if got := envVar(t, c, "HOOKPOST_MAX_CONCURRENT_ATTEMPTS").Value; got != "64" {
				t.Errorf("HOOKPOST_MAX_CONCURRENT_ATTEMPTS %q, want 64", got)
			}
			for name, want := range map[string]string{"HOOKPOST_REPLAY_INTERVAL": "10s", "HOOKPOST_REPLAY_RATE": "10", "HOOKPOST_REPLAY_BURST": "20",
				"HOOKPOST_MAX_UNFINISHED_PER_SUBSCRIPTION": "10000", "HOOKPOST_MAX_UNFINISHED": "100000"} {
				if got := envVar(t, c, name).Value; got != want {
					t.Errorf("%s %q, want %q", name, got, want)
				}
			}
			if got := tenantIsolation(c); got != "true" {
				t.Errorf("tenant isolation %q by default, want true: it is off only by explicit choice", got)
			}
		},
	}, {
		name:   "tenant-isolation-off",
		values: []string{"--set", "tenantIsolation=false"},
		check: func(t *testing.T, objs []*unstructured.Unstructured, c *corev1.Container) {
			if got := tenantIsolation(c); got != "false" {
				t.Errorf("tenant isolation %q, want false when tenantIsolation=false", got)
			}
		},
	}, {
		name:   "postgres",
		values: []string{"-f", "test/helm/testdata/postgres-values.yaml"},
		check: func(t *testing.T, objs []*unstructured.Unstructured, c *corev1.Container) {
			d := convert[appsv1.Deployment](t, find(t, objs, "Deployment"))
			if *d.Spec.Replicas != 2 {
				t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
			}
			dsn := envVar(t, c, "HOOKPOST_POSTGRES_DSN")
			if dsn.Value != "" || dsn.ValueFrom == nil || dsn.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("HOOKPOST_POSTGRES_DSN %+v is not read from a Secret", dsn)
			}
			if ref := dsn.ValueFrom.SecretKeyRef; ref.Name != "outbox-dsn" || ref.Key != "dsn" {
				t.Errorf("HOOKPOST_POSTGRES_DSN from Secret %s key %s, want outbox-dsn key dsn", ref.Name, ref.Key)
			}
			for name, want := range map[string]string{
				"HOOKPOST_POSTGRES_TABLE":   "webhook_outbox",
				"HOOKPOST_POSTGRES_MIGRATE": "true",
				"HOOKPOST_ALLOW_CIDRS":      "10.0.0.0/8,fd00::/8",
				"HOOKPOST_DENY_CIDRS":       "10.0.0.0/24",
			} {
				if got := envVar(t, c, name).Value; got != want {
					t.Errorf("%s %q, want %q", name, got, want)
				}
			}
			if !strings.Contains(strings.Join(c.Args, " "), "--zap-log-level=debug") {
				t.Errorf("args %v lack --zap-log-level=debug", c.Args)
			}
		},
	}, {
		name:   "nats",
		values: []string{"-f", "test/helm/testdata/nats-values.yaml"},
		check: func(t *testing.T, objs []*unstructured.Unstructured, c *corev1.Container) {
			for name, want := range map[string]string{
				"HOOKPOST_NATS_URL":                "nats://nats.messaging.svc:4222",
				"HOOKPOST_NATS_STREAM":             "ORDERS",
				"HOOKPOST_NATS_SUBJECT_PREFIX":     "orders.events.",
				"HOOKPOST_NATS_CREATE_STREAM":      "true",
				"HOOKPOST_MAX_CONCURRENT_ATTEMPTS": "32",
				"HOOKPOST_MAX_ATTEMPTS_PER_HOST":   "4",
				"HOOKPOST_DELIVERY_WORKERS":        "16",
			} {
				if got := envVar(t, c, name).Value; got != want {
					t.Errorf("%s %q, want %q", name, got, want)
				}
			}
			// The creds path the manager is told must be the file the Secret volume projects.
			d := convert[appsv1.Deployment](t, find(t, objs, "Deployment"))
			credsPath := envVar(t, c, "HOOKPOST_NATS_CREDS").Value
			if len(c.VolumeMounts) != 1 || len(d.Spec.Template.Spec.Volumes) != 1 {
				t.Fatalf("want one creds volume and mount, got %v and %v", d.Spec.Template.Spec.Volumes, c.VolumeMounts)
			}
			vol := d.Spec.Template.Spec.Volumes[0]
			if vol.Secret == nil || vol.Secret.SecretName != "nats-user" || len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Key != "user.creds" {
				t.Fatalf("creds volume %+v does not project key user.creds of Secret nats-user", vol)
			}
			if mounted := filepath.Join(c.VolumeMounts[0].MountPath, vol.Secret.Items[0].Path); mounted != credsPath || !c.VolumeMounts[0].ReadOnly {
				t.Errorf("creds mounted read-only=%v at %s, HOOKPOST_NATS_CREDS=%s", c.VolumeMounts[0].ReadOnly, mounted, credsPath)
			}
		},
	}, {
		name:   "monitoring",
		values: []string{"-f", "test/helm/testdata/monitoring-values.yaml"},
		check: func(t *testing.T, objs []*unstructured.Unstructured, _ *corev1.Container) {
			svc := convert[corev1.Service](t, find(t, objs, "Service"))
			sm := find(t, objs, "ServiceMonitor")
			selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			for k, v := range selector {
				if svc.Labels[k] != v {
					t.Errorf("ServiceMonitor selects %s=%s, the metrics Service is labelled %v", k, v, svc.Labels)
				}
			}
			endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != svc.Spec.Ports[0].Name {
				t.Errorf("ServiceMonitor endpoints %v do not scrape Service port %q", endpoints, svc.Spec.Ports[0].Name)
			}
			rule := find(t, objs, "PrometheusRule")
			groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
			raw, _ := yaml.Marshal(groups)
			for _, want := range []string{
				`hookpost_deliveries_total{namespace="hookpost-monitoring",service="hookpost-metrics",outcome="failed"}`,
				"hookpost_retry_backlog{",
				"hookpost_source_lag_seconds{",
				"{{ $value", // Prometheus templating survives Helm's
			} {
				if !strings.Contains(string(raw), want) {
					t.Errorf("PrometheusRule lacks %s:\n%s", want, raw)
				}
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := "hookpost-" + tc.name
			objs := renderChart(t, ns, tc.values...)
			d := convert[appsv1.Deployment](t, find(t, objs, "Deployment"))
			c := checkManagerDeployment(t, d)
			if want := "--leader-election-namespace=" + ns; !strings.Contains(strings.Join(c.Args, " "), want) {
				t.Errorf("args %v lack %s", c.Args, want)
			}
			tc.check(t, objs, c)
			createNamespace(t, ns)
			dryRunApply(t, objs)
		})
	}
}

// TestChartClusterRoleMatchesGenerated keeps the chart's copy of the RBAC rules equal to the ones controller-gen
// generates from the +kubebuilder:rbac markers.
func TestChartClusterRoleMatchesGenerated(t *testing.T) {
	objs := renderChart(t, "hookpost-system")
	chartRole := convert[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole"))
	generated, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	genRole := convert[rbacv1.ClusterRole](t, find(t, decodeManifests(t, generated), "ClusterRole"))
	if !reflect.DeepEqual(chartRole.Rules, genRole.Rules) {
		t.Errorf("charts/hookpost/templates/clusterrole.yaml rules differ from config/rbac/role.yaml: copy them over\nchart: %+v\ngenerated: %+v", chartRole.Rules, genRole.Rules)
	}
}

// TestChartDeliveryAdmissionPolicy checks the policy that keeps hand-made deliveries to test events: it binds
// itself, denies, checks the verb the operator's ClusterRole grants, the kustomize copy says the same, and the
// chart leaves it out only when told to.
func TestChartDeliveryAdmissionPolicy(t *testing.T) {
	objs := renderChart(t, "hookpost-system")
	policy := convert[admissionregistrationv1.ValidatingAdmissionPolicy](t, find(t, objs, "ValidatingAdmissionPolicy"))
	binding := convert[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, find(t, objs, "ValidatingAdmissionPolicyBinding"))
	if binding.Spec.PolicyName != policy.Name || !reflect.DeepEqual(binding.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
		t.Errorf("binding %+v does not bind policy %s with Deny", binding.Spec, policy.Name)
	}
	if len(policy.Spec.Validations) != 1 || !strings.Contains(policy.Spec.Validations[0].Expression, "check('deliver-events')") ||
		!strings.Contains(policy.Spec.Validations[0].Message, "spec.test must be true") {
		t.Errorf("policy validations %+v do not check deliver-events with a message naming spec.test", policy.Spec.Validations)
	}
	role := convert[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole"))
	granted := false
	for _, r := range role.Rules {
		granted = granted || slices.Contains(r.Resources, "webhookdeliveries") && slices.Contains(r.Verbs, "deliver-events")
	}
	if !granted {
		t.Errorf("the operator's ClusterRole does not grant deliver-events on webhookdeliveries: its own deliveries would be refused")
	}

	raw, err := os.ReadFile(filepath.Join(root, "config", "admission", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kustomized := decodeManifests(t, raw)
	kPolicy := convert[admissionregistrationv1.ValidatingAdmissionPolicy](t, find(t, kustomized, "ValidatingAdmissionPolicy"))
	kBinding := convert[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, find(t, kustomized, "ValidatingAdmissionPolicyBinding"))
	if !reflect.DeepEqual(kPolicy.Spec, policy.Spec) || !reflect.DeepEqual(kBinding.Spec, binding.Spec) {
		t.Errorf("config/admission/policy.yaml differs from charts/hookpost/%s: copy the spec over\nchart: %+v\nkustomize: %+v",
			"templates/delivery-admission-policy.yaml", policy.Spec, kPolicy.Spec)
	}

	if got := kinds(renderChart(t, "hookpost-system", "--set", "deliveryAdmission.enabled=false")); got["ValidatingAdmissionPolicy"]+got["ValidatingAdmissionPolicyBinding"] != 0 {
		t.Errorf("deliveryAdmission.enabled=false still renders the policy: %v", got)
	}
}

// TestChartCRDsMatchGenerated catches a chart whose crds/ was not refreshed by make manifests.
func TestChartCRDsMatchGenerated(t *testing.T) {
	for _, path := range generatedCRDFiles(t) {
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, chart, "crds", filepath.Base(path)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s/crds/%s differs from config/crd/bases: run 'make manifests' (%v)", chart, filepath.Base(path), err)
		}
	}
}

func TestChartSchemaRejectsBadValues(t *testing.T) {
	helm := helmBinary(t)
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"replicaCount=abc"}, "/replicaCount"},
		{[]string{"postgres.enabled=true"}, "/postgres/dsnSecret/name"},
		{[]string{"nats.enabled=true"}, "/nats"},
		{[]string{"logLevel=verbose"}, "/logLevel"},
		{[]string{"allowCIDRs={10.0.0.0}"}, "/allowCIDRs/0"},
		{[]string{"denyCIDRs={169.254.169.254}"}, "/denyCIDRs/0"},
		{[]string{"concurency.deliveryWorkers=4"}, "concurency"},
		{[]string{"deliveryAdmission.enabled=maybe"}, "/deliveryAdmission/enabled"},
		{[]string{"replay.burst=0"}, "/replay/burst"},
		{[]string{"replay.interval=10"}, "/replay/interval"},
		{[]string{"unfinished.perSubscription=0"}, "/unfinished/perSubscription"},
	} {
		args := []string{"template", "hookpost", chart}
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		_, err := runCommand(t, helm, args...)
		if err == nil {
			t.Errorf("helm template --set %v succeeded, want a schema error", tc.set)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "values don't meet the specifications of the schema") || !strings.Contains(msg, tc.want) {
			t.Errorf("helm template --set %v failed without a schema error naming %s: %v", tc.set, tc.want, err)
		}
	}
}

func generatedCRDFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated CRDs in config/crd/bases: %v", err)
	}
	return files
}

func generatedCRDs(t *testing.T) int { return len(generatedCRDFiles(t)) }
