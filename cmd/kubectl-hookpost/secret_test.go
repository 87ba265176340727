package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/signing"
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

func TestSecretRotateKeepsTheOldKeyForTheOverlap(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	sub := createReadySubscription(t, fixtures.Subscription(ns, "rotating", "https://example.com/hooks",
		fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, "")))
	old := strings.TrimSpace(mustRun(t, "secret", "rotating", "-n", ns))

	out := mustRun(t, "secret", "rotate", "rotating", "-n", ns)
	if !strings.Contains(out, signing.Fingerprint(old)+" keeps signing for 24h0m0s") {
		t.Errorf("rotate printed %q, want it to name the old key's id and the overlap", out)
	}
	s := &corev1.Secret{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: sub.Status.SigningSecretRef.Name}, s); err != nil {
		t.Fatal(err)
	}
	current, previous := string(s.Data["secret"]), string(s.Data["secret.previous"])
	if previous != old || current == old {
		t.Fatalf("after rotate the Secret holds a current key equal to the old one (%v) or previous %q, want the old %q", current == old, previous, old)
	}
	if _, err := signing.Key(signing.SchemeStandardWebhooks, current); err != nil {
		t.Errorf("the new secret cannot sign Standard Webhooks, which the subscription uses: %v", err)
	}

	// The operator records the rotation without showing either value, and both keys sign until its expiry.
	eventually(t, 30*time.Second, func() error {
		var got secretOutput
		if err := json.Unmarshal([]byte(mustRun(t, "secret", "rotating", "-n", ns, "-o", "json")), &got); err != nil {
			return err
		}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(sub), sub); err != nil {
			return err
		}
		keys := sub.Status.SigningKeys
		if len(keys) != 2 || keys[1].ID != signing.Fingerprint(old) || keys[1].Role != hookpostv1.SigningKeyPrevious || keys[1].ExpiresAt == nil {
			return fmt.Errorf("status.signingKeys = %+v, want the old key as Previous with an expiry", keys)
		}
		if got.Secret != current || got.ID != keys[0].ID || got.PreviousID != keys[1].ID || got.Previous != old {
			return fmt.Errorf("secret -o json = %+v", got)
		}
		return nil
	})
	if raw, err := json.Marshal(sub); err != nil || strings.Contains(string(raw), old) || strings.Contains(string(raw), current) {
		t.Errorf("the subscription shows a secret value (or cannot be encoded: %v)", err)
	}

	if r := run(t, "", "secret", "rotate", "rotating", "-n", ns); r.code == 0 || !strings.Contains(r.stderr, "is rotating already: the previous secret "+signing.Fingerprint(old)+" still signs until ") {
		t.Errorf("a second rotate during the overlap: exit %d, %s", r.code, r.stderr)
	}
	if r := run(t, "", "secret", "rotate", "missing", "-n", ns); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("rotate of a missing subscription: exit %d, %s", r.code, r.stderr)
	}
}
