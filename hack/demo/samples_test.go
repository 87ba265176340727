package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/harness"
)

// TestSamplesAreAcceptedByTheCRDs creates every object in config/samples against a real kube-apiserver with the
// generated CRDs, so a schema or CEL change that breaks a sample fails here instead of in a user's terminal.
func TestSamplesAreAcceptedByTheCRDs(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "config", "samples")
	files := sampleFiles(t, dir)

	cp, err := harness.StartControlPlane(t.TempDir())
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var subscriptions []string
	for _, file := range files {
		for _, obj := range decodeObjects(t, filepath.Join(dir, file)) {
			if obj.GetNamespace() == "" {
				obj.SetNamespace("default")
			}
			if err := cp.Client.Create(ctx, obj); err != nil {
				t.Errorf("%s: %s %s rejected: %v", file, obj.GetKind(), obj.GetName(), err)
				continue
			}
			if obj.GetKind() == "WebhookSubscription" {
				subscriptions = append(subscriptions, obj.GetName())
			}
		}
	}
	if len(subscriptions) < 3 {
		t.Fatalf("created %d WebhookSubscriptions (%v), want the three samples", len(subscriptions), subscriptions)
	}

	// The doc-000 sample relies on the server's defaults; check they are the documented ones.
	var orders hookpostv1.WebhookSubscription
	if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "urban-things"}, &orders); err != nil {
		t.Fatal(err)
	}
	var schedule []string
	for _, d := range orders.Spec.Retry.Schedule {
		schedule = append(schedule, d.Duration.String())
	}
	if want := []string{"1m0s", "5m0s", "15m0s", "1h0m0s", "6h0m0s"}; !slices.Equal(schedule, want) {
		t.Errorf("urban-things retry schedule %v, want %v", schedule, want)
	}
	if orders.Spec.PayloadFormat != hookpostv1.PayloadFormatEnvelope || orders.Spec.Signing.Scheme != hookpostv1.SigningSchemeHMACSHA256Hex {
		t.Errorf("urban-things format %q scheme %q, want Envelope and HMACSHA256Hex", orders.Spec.PayloadFormat, orders.Spec.Signing.Scheme)
	}

	// And what a user would run: kubectl apply of the directory, both plain and through kustomize.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl not on PATH: run the tests with `make test`, which builds kubectl into bin/k8s/ and puts it on PATH")
	}
	for _, args := range [][]string{{"apply", "-k", dir}, {"apply", "--dry-run=server", "-f", dir}} {
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", cp.KubeconfigPath, "-n", "default"}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
}

// sampleFiles returns the resources config/samples/Kustomization lists, after checking it lists every YAML file in dir.
func sampleFiles(t *testing.T, dir string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "Kustomization"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatalf("config/samples/Kustomization: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		if !slices.Contains(k.Resources, name) {
			t.Errorf("config/samples/%s is not listed in config/samples/Kustomization", name)
		}
	}
	return k.Resources
}

func decodeObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if _, err := apimeta.Accessor(obj); err != nil || obj.GetKind() == "" {
			t.Fatalf("%s: a document without kind or metadata", path)
		}
		objs = append(objs, obj)
	}
	return objs
}
