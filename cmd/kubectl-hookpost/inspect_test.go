package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/signing"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

func TestInspectStandardWebhooksSignsAsOfNow(t *testing.T) {
	ns := newNamespace(t)
	recv := harness.NewReceiver()
	defer recv.Close()
	name, received, secret := sendTestEvent(t, recv, fixtures.Subscription(ns, "users", recv.URL+"/users", fixtures.InsecureHTTP(),
		fixtures.Scheme(hookpostv1.SigningSchemeStandardWebhooks), fixtures.Headers(map[string]string{"X-Team": "growth"})),
		"--event", "user.registered", "--tenant", "123")

	var in inspection
	if err := yaml.Unmarshal([]byte(mustRun(t, "inspect", name, "-n", ns, "-o", "yaml")), &in); err != nil {
		t.Fatal(err)
	}
	if in.Request == nil || in.Request.Body != string(received.Body) {
		t.Fatalf("inspect body differs from the received one:\n%+v\n%s", in.Request, received.Body)
	}
	// Every header the receiver got that Hookpost sets appears in inspect; only the per-attempt ones differ.
	perAttempt := map[string]bool{"Webhook-Timestamp": true, "Webhook-Signature": true, "X-Hookpost-Attempt": true}
	for k := range in.Request.Headers {
		if perAttempt[k] {
			continue
		}
		if g, w := received.Header.Get(k), in.Request.Headers.Get(k); g != w {
			t.Errorf("header %s: received %q, inspect shows %q", k, g, w)
		}
	}
	for _, k := range []string{"X-Team", "Webhook-Id", "X-Event-Id", "User-Agent", "Content-Type"} {
		if in.Request.Headers.Get(k) == "" {
			t.Errorf("inspect shows no %s header", k)
		}
	}
	if in.Request.Headers.Get("X-Hookpost-Attempt") != "2" {
		t.Errorf("inspect's X-Hookpost-Attempt = %q, want the next attempt, 2", in.Request.Headers.Get("X-Hookpost-Attempt"))
	}
	// The signature is as of now, so it verifies now.
	if err := signing.VerifyStandard(secret, in.Request.Headers, []byte(in.Request.Body), time.Now(), 5*time.Minute); err != nil {
		t.Errorf("inspect's signature does not verify now: %v", err)
	}
	text := mustRun(t, "inspect", name, "-n", ns)
	if !strings.Contains(text, "webhook-timestamp and webhook-signature differ per attempt") {
		t.Errorf("inspect does not say the timestamp is per attempt:\n%s", text)
	}

	// What the receiver got verifies with `verify`, and a tampered body does not.
	dir := t.TempDir()
	body := filepath.Join(dir, "body.json")
	if err := os.WriteFile(body, received.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"verify", "--scheme", "StandardWebhooks", "--secret", secret, "--body", body}, headerFlags(received.Header, "webhook-id", "webhook-timestamp", "webhook-signature")...)
	if r := run(t, "", args...); r.code != 0 || !strings.HasPrefix(r.stdout, "VALID") {
		t.Errorf("verify of the received request: exit %d: %s", r.code, r.stdout)
	}
	tampered := strings.Replace(string(received.Body), `"user_id":42`, `"user_id":43`, 1)
	if tampered == string(received.Body) {
		t.Fatal("test body has no user_id to tamper with")
	}
	if err := os.WriteFile(body, []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", args...); r.code != 1 || !strings.Contains(r.stdout, "INVALID: the signature does not match") {
		t.Errorf("verify of a tampered body: exit %d: %s", r.code, r.stdout)
	}

	var asJSON map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", name, "-n", ns, "-o", "json")), &asJSON); err != nil {
		t.Errorf("inspect -o json is not JSON: %v", err)
	}
}

func TestInspectExplainsWhyItCannotBuildTheRequest(t *testing.T) {
	ns := newNamespace(t)
	d := fixtures.Delivery(ns, "gone", "evt-1", "order.created", map[string]int{"order_id": 1})
	if err := k8sClient.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "inspect", d.Name, "-n", ns)
	if !strings.Contains(out, "cannot build the request") || !strings.Contains(out, "History: no attempts yet") {
		t.Errorf("inspect of a delivery without subscription:\n%s", out)
	}
}

// TestOneRequestVerifiesWithHexHMACAndStandardWebhooks is a receiver migrating from hex HMAC to Standard Webhooks:
// the request it gets verifies with `verify` under both schemes and the one secret `secret` prints, and inspect
// shows every signature header the receiver got.
func TestOneRequestVerifiesWithHexHMACAndStandardWebhooks(t *testing.T) {
	ns := newNamespace(t)
	recv := harness.NewReceiver()
	defer recv.Close()
	name, received, secret := sendTestEvent(t, recv, fixtures.Subscription(ns, "migrating", recv.URL+"/migrating", fixtures.InsecureHTTP(),
		fixtures.SignatureHeader("X-urBackend-Signature"), fixtures.AdditionalSignature(hookpostv1.SigningSchemeStandardWebhooks, "")),
		"--event", "insert", "--collection", "posts")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("generated secret is not in whsec_ form, so StandardWebhooks cannot use it")
	}
	var asJSON secretOutput
	if err := json.Unmarshal([]byte(mustRun(t, "secret", "migrating", "-n", ns, "-o", "json")), &asJSON); err != nil {
		t.Fatal(err)
	}
	if asJSON.Scheme != hookpostv1.SigningSchemeHMACSHA256Hex || !slices.Equal(asJSON.AdditionalSchemes, []hookpostv1.SigningScheme{hookpostv1.SigningSchemeStandardWebhooks}) {
		t.Errorf("secret -o json names schemes %s and %v, want HMACSHA256Hex and [StandardWebhooks]", asJSON.Scheme, asJSON.AdditionalSchemes)
	}

	body := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(body, received.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	hmacArgs := append([]string{"verify", "--secret", secret, "--body", body, "--signature-header", "X-urBackend-Signature"},
		headerFlags(received.Header, "X-urBackend-Signature")...)
	stdArgs := append([]string{"verify", "--scheme", "StandardWebhooks", "--secret", secret, "--body", body},
		headerFlags(received.Header, "webhook-id", "webhook-timestamp", "webhook-signature")...)
	for _, args := range [][]string{hmacArgs, stdArgs} {
		if r := run(t, "", args...); r.code != 0 || !strings.HasPrefix(r.stdout, "VALID") {
			t.Errorf("kubectl hookpost %s: exit %d: %s", strings.Join(args[:3], " "), r.code, r.stdout)
		}
	}

	var in inspection
	if err := yaml.Unmarshal([]byte(mustRun(t, "inspect", name, "-n", ns, "-o", "yaml")), &in); err != nil {
		t.Fatal(err)
	}
	if in.Request == nil || in.Request.Scheme != "HMACSHA256Hex" || len(in.Request.AdditionalSchemes) != 1 || in.Request.AdditionalSchemes[0] != "StandardWebhooks" {
		t.Fatalf("inspect's request = %+v, want scheme HMACSHA256Hex and additional StandardWebhooks", in.Request)
	}
	// The hex signature covers only the body, so inspect's equals the received one; Standard Webhooks' is as of now.
	if g, w := in.Request.Headers.Get("X-urBackend-Signature"), received.Header.Get("X-urBackend-Signature"); g != w {
		t.Errorf("inspect's X-urBackend-Signature = %q, received %q", g, w)
	}
	if err := signing.VerifyStandard(secret, in.Request.Headers, []byte(in.Request.Body), time.Now(), 5*time.Minute); err != nil {
		t.Errorf("inspect's webhook-signature does not verify now: %v", err)
	}
	if text := mustRun(t, "inspect", name, "-n", ns); !strings.Contains(text, "webhook-timestamp and webhook-signature differ per attempt") {
		t.Errorf("inspect does not say the Standard Webhooks signature is per attempt:\n%s", text)
	}
}

// sendTestEvent creates sub, Ready, sends it a test event with `test --wait` and testArgs, and returns the delivery's
// name, the one request recv got on sub's URL path, and the secret `secret` prints.
func sendTestEvent(t *testing.T, recv *harness.Receiver, sub *hookpostv1.WebhookSubscription, testArgs ...string) (string, harness.Received, string) {
	t.Helper()
	createReadySubscription(t, sub)
	args := append([]string{"test", sub.Name, "--wait", "-n", sub.Namespace}, testArgs...)
	name := strings.Split(mustRun(t, args...), "\n")[0]
	path := strings.TrimPrefix(sub.Spec.URL, recv.URL)
	got := recv.Requests(path)
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests on %s", len(got), path)
	}
	return name, got[0], strings.TrimSpace(mustRun(t, "secret", sub.Name, "-n", sub.Namespace))
}

// TestInspectNamesTheTLSMaterial: a subscription with spec.tls shows, in inspect, the client certificate and CA
// bundle its connection uses (here while they are still missing: the request is shown all the same).
func TestInspectNamesTheTLSMaterial(t *testing.T) {
	ns := newNamespace(t)
	createReadySubscription(t, fixtures.Subscription(ns, "partner", "https://127.0.0.1:1/hook", fixtures.ClientCertificate("partner-client"),
		fixtures.CABundle(hookpostv1.CABundleRef{ConfigMapName: "partner-ca"})))
	d := fixtures.Delivery(ns, "partner", "evt-tls", "order.created", map[string]int{"order_id": 1}, fixtures.Test())
	if err := k8sClient.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	want := "client certificate from Secret partner-client; receiver verified with the CA bundle in ConfigMap partner-ca, key ca.crt"
	if out := mustRun(t, "inspect", d.Name, "-n", ns); !strings.Contains(out, "Connection (spec.tls): "+want+".") {
		t.Errorf("inspect does not name the TLS material:\n%s", out)
	}
	var in inspection
	if err := yaml.Unmarshal([]byte(mustRun(t, "inspect", d.Name, "-n", ns, "-o", "yaml")), &in); err != nil {
		t.Fatal(err)
	}
	if in.Request == nil || in.Request.TLS != want {
		t.Errorf("inspect -o yaml request.tls = %+v, want %q", in.Request, want)
	}
}

// headerFlags turns headers into --header flags.
func headerFlags(h http.Header, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, "--header", n+": "+h.Get(n))
	}
	return out
}

// TestInspectEscapesWhatProducersAndReceiversWrote: a tenant holding a terminal escape sequence and a receiver
// answering with one are printed spelled out, so inspecting a delivery cannot drive the terminal.
func TestInspectEscapesWhatProducersAndReceiversWrote(t *testing.T) {
	ns := newNamespace(t)
	recv := harness.NewReceiver()
	defer recv.Close()
	recv.Script("/orders", harness.Response{Status: 200, Body: "ok\x1b]0;owned\x07"})
	createReadySubscription(t, fixtures.Subscription(ns, "orders", recv.URL+"/orders", fixtures.InsecureHTTP()))
	name := strings.Split(mustRun(t, "test", "orders", "--event", "order.created", "--tenant", "\x1b[31mred", "--wait", "-n", ns), "\n")[0]
	out := mustRun(t, "inspect", name, "-n", ns)
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Fatalf("inspect printed a raw escape sequence:\n%q", out)
	}
	for _, want := range []string{`\x1b[31mred`, `attempt 1: ok\x1b]0;owned\x07`} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
}

func TestInspectSaysWhereOlderAttemptsAre(t *testing.T) {
	history := func(from, to int32) []hookpostv1.AttemptRecord {
		var h []hookpostv1.AttemptRecord
		for n := from; n <= to; n++ {
			h = append(h, hookpostv1.AttemptRecord{Number: n, StatusCode: 503})
		}
		return h
	}
	for _, tt := range []struct {
		name string
		in   inspection
		want string
	}{
		{
			name: "every attempt in status",
			in:   inspection{Event: hookpostv1.EventMeta{ID: "evt-few"}, Attempts: 2, History: history(1, 2)},
			want: "\nHistory:\n",
		},
		{
			name: "status left three out",
			in:   inspection{Event: hookpostv1.EventMeta{ID: "evt-many"}, Attempts: 13, History: history(4, 13), AttemptsNotInHistory: 3},
			want: "\nHistory: the last 10 of 13 attempts; the 3 older ones are in the delivery ledger: kubectl hookpost history --event evt-many\n",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printInspection(&out, tt.in)
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("inspect printed\n%s\nwant it to contain %q", out.String(), tt.want)
			}
		})
	}
}
