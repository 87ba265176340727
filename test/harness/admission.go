package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DeliveryAdmissionTemplate is the chart template holding the ValidatingAdmissionPolicy that refuses hand-made
// deliveries of real events, and its binding.
const DeliveryAdmissionTemplate = "templates/delivery-admission-policy.yaml"

// DeliveryAdmissionObjects renders the Helm chart's delivery admission policy and binding with bin/helm, as
// `helm install` would with the chart's defaults: tests install what the chart ships, not a copy of it.
func DeliveryAdmissionObjects() ([]*unstructured.Unstructured, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	helm := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		return nil, fmt.Errorf("%s is missing: run `make bin/helm` (make test does it)", helm)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(helm, "template", "hookpost", filepath.Join(root, "charts", "hookpost"), "--show-only", DeliveryAdmissionTemplate)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("render %s: %w: %s", DeliveryAdmissionTemplate, err, stderr.String())
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("decode %s: %w", DeliveryAdmissionTemplate, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	if len(objs) != 2 {
		return nil, fmt.Errorf("%s rendered %d objects, want a policy and its binding", DeliveryAdmissionTemplate, len(objs))
	}
	return objs, nil
}

// InstallDeliveryAdmission creates the chart's delivery admission policy and binding, so the control plane
// refuses hand-made deliveries of real events as a cluster with the chart installed does. The API server
// enforces a new policy within about a second.
func InstallDeliveryAdmission(ctx context.Context, c client.Client) error {
	objs, err := DeliveryAdmissionObjects()
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}
