package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
)

func TestSecretPrintsTheSecretInUse(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)

	createReadySubscription(t, fixtures.Subscription(ns, "generated", "https://example.com/hooks"))
	generated := &corev1.Secret{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: hookpostv1.GeneratedSecretName("generated")}, generated); err != nil {
		t.Fatal(err)
	}
	want := string(generated.Data[hookpostv1.DefaultSecretKey])
	if got := mustRun(t, "secret", "generated", "-n", ns); got != want+"\n" || want == "" {
		t.Errorf("secret printed %q, want the generated %q", got, want)
	}

	own := fixtures.SigningSecret(ns, "mine", map[string]string{"token": "my-own-secret"})
	if err := k8sClient.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	createReadySubscription(t, fixtures.Subscription(ns, "supplied", "https://example.com/hooks", fixtures.SecretRef("mine", "token")))
	var out secretOutput
	if err := json.Unmarshal([]byte(mustRun(t, "secret", "supplied", "-n", ns, "-o", "json")), &out); err != nil {
		t.Fatal(err)
	}
	if out.Secret != "my-own-secret" || out.SecretRef.Name != "mine" || out.Scheme != hookpostv1.SigningSchemeHMACSHA256Hex {
		t.Errorf("secret -o json = %+v", out)
	}

	if r := run(t, "", "secret", "missing", "-n", ns); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("secret of a missing subscription: exit %d, %s", r.code, r.stderr)
	}
}
