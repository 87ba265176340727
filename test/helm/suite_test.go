package helm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/hookpost/hookpost/test/harness"
)

// The API server every test dry-runs against, with the Hookpost CRDs and minimal monitoring.coreos.com CRDs.
var (
	root      string
	k8sClient client.Client
	// restConfig reaches the API server as its admin; tests derive impersonating configs from it.
	restConfig *rest.Config
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if root, err = harness.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := &envtest.Environment{
		CRDDirectoryPaths: []string{
			filepath.Join(root, "config", "crd", "bases"),
			filepath.Join("testdata", "crds"),
		},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run 'make test' (or KUBEBUILDER_ASSETS=bin/k8s/<version> go test ./test/helm/)")
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}()
	restConfig = cfg
	if k8sClient, err = client.New(cfg, client.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "create client:", err)
		return 1
	}
	return m.Run()
}

// helmBinary is the helm the Makefile installs; the tests never fall back to whatever is on PATH, so every
// machine lints and renders with the same version.
func helmBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run 'make test', which installs it", bin)
	}
	return bin
}

// runCommand runs name in the repository root and returns its stdout, or its stderr as the error.
func runCommand(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %v: %w\n%s", name, args, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// decodeManifests splits a multi-document YAML stream into objects, dropping empty documents.
func decodeManifests(t *testing.T, manifests []byte) []*unstructured.Unstructured {
	t.Helper()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifests)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("read manifest: %v", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("decode manifest: %v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// createNamespace creates ns for real: a dry-run Namespace does not exist for the dry-runs of its contents.
func createNamespace(t *testing.T, ns string) {
	t.Helper()
	err := k8sClient.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
}

// dryRunApply server-side applies every object with dryRun=All. Server-side apply validates fields strictly, so an
// unknown or misspelt field is an error, not a warning.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	if len(objs) == 0 {
		t.Fatal("no objects to apply")
	}
	for _, obj := range objs {
		err := k8sClient.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(obj),
			client.DryRunAll, client.ForceOwnership, client.FieldOwner("hookpost-deploy-test"))
		if err != nil {
			t.Errorf("dry-run apply %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

// find returns the one object of kind, failing the test unless there is exactly one.
func find(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == kind {
			found = append(found, obj)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want 1 %s, rendered %d", kind, len(found))
	}
	return found[0]
}

// convert turns an unstructured object into its typed form, to assert on it with field names the compiler checks.
func convert[T any](t *testing.T, obj *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj.Object, out, true); err != nil {
		t.Fatalf("convert %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	return out
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	n := map[string]int{}
	for _, obj := range objs {
		n[obj.GetKind()]++
	}
	return n
}
