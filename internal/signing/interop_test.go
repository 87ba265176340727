package signing_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookpost/hookpost/internal/envelope"
	"github.com/hookpost/hookpost/internal/signing"
)

// TestStandardWebhooksLibraryAcceptsOurHeaders proves interoperability with the official Go library,
// which is what a receiver following the specification runs.
func TestStandardWebhooksLibraryAcceptsOurHeaders(t *testing.T) {
	secret, err := signing.GenerateSecret(signing.SchemeStandardWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := envelope.Build(envelope.FormatCloudEvents, envelope.Event{
		ID: "evt_1", Type: "order.created", Source: "/hookpost/shop/orders", OccurredAt: time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC),
		Data: []byte(`{"order_id":1001,"total":299.99,"note":"<b>\u2028"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The library checks the timestamp against its own time.Now, so sign with the current time.
	m := signing.Message{ID: "evt_1", Timestamp: time.Now(), Body: body}
	h, err := signing.Headers(signing.SchemeStandardWebhooks, "", secret, m)
	if err != nil {
		t.Fatal(err)
	}

	wh := officialWebhook(t, secret)
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("official library rejects our headers: %v", err)
	}
	tampered := append(bytes.Clone(body[:len(body)-1]), ' ', '}')
	if err := wh.Verify(tampered, h); err == nil {
		t.Error("official library accepts a tampered body with our headers")
	}

	// And the other way round: what the library signs, we verify.
	librarySignature, err := wh.Sign(m.ID, m.Timestamp, body)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get(signing.HeaderWebhookSignature); got != librarySignature {
		t.Errorf("signature %s, official library signs %s", got, librarySignature)
	}
	if err := signing.VerifyStandard(secret, h, body, m.Timestamp, 5*time.Minute); err != nil {
		t.Errorf("VerifyStandard rejects the library-equivalent headers: %v", err)
	}
}

// TestNodeVerifierAcceptsHMACHex runs the verifier code of product documents 000 and 002 in real node
// against bodies built by envelope.Build, including hostile data, and signed by Headers.
func TestNodeVerifierAcceptsHMACHex(t *testing.T) {
	secret, err := signing.GenerateSecret(signing.SchemeHMACSHA256Hex)
	if err != nil {
		t.Fatal(err)
	}
	occurredAt := time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC)
	events := []struct {
		format envelope.Format
		ev     envelope.Event
	}{
		{envelope.FormatEnvelope, envelope.Event{Type: "user.registered", TenantID: "123", OccurredAt: occurredAt,
			Data: []byte(`{"user_id": 42, "name": "John Doe", "email": "john@example.com", "role": "MEMBER", "invited_by": 17}`)}},
		{envelope.FormatCollection, envelope.Event{Type: "insert", Collection: "posts", OccurredAt: occurredAt,
			Data: []byte(`{"_id": "64fd1234abcd5678ef901234", "title": "Hello World", "body": "Content here..."}`)}},
		{envelope.FormatEnvelope, envelope.Event{Type: "order.created", TenantID: "007", OccurredAt: occurredAt,
			Data: []byte(`{"total": 299.990, "big": 9007199254740993, "e": 1E21, "z": -0, "2": "b", "1": "a", "1": "c", "s": "\ud800 \u2028 <&> \u0007 😀 \/"}`)}},
		{envelope.FormatCloudEvents, envelope.Event{ID: "evt_9", Type: "product.updated", TenantID: "123", Source: "/hookpost/shop/p",
			Collection: "products", OccurredAt: occurredAt.Add(123 * time.Millisecond), Data: []byte(`[1.0, {"b":1,"a":[]}, "\u00e9"]`)}},
	}

	type request struct {
		Body      string `json:"body"`
		Signature string `json:"signature"`
	}
	var requests []request
	for _, e := range events {
		body, _, err := envelope.Build(e.format, e.ev)
		if err != nil {
			t.Fatal(err)
		}
		h, err := signing.Headers(signing.SchemeHMACSHA256Hex, "X-urBackend-Signature", secret, signing.Message{ID: "evt", Timestamp: occurredAt, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		requests = append(requests, request{Body: string(body), Signature: h.Get("X-urBackend-Signature")})
	}
	// A signature over different bytes must fail in node too, or the check above proves nothing.
	requests = append(requests, request{Body: `{"event":"insert","collection":"posts","payload":{}}`, Signature: requests[1].Signature})

	// The receivers run express.json() (JSON.parse of the body) and then the documents' verifiers.
	const script = `
const crypto = require('crypto');
const secret = process.argv[1];
const requests = JSON.parse(require('fs').readFileSync(0, 'utf8'));
function verifyWebhookSignature(payload, signature, secret) { // product doc 000
  const expectedSignature = crypto.createHmac('sha256', secret).update(JSON.stringify(payload)).digest('hex');
  return signature.length === expectedSignature.length &&
    crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expectedSignature));
}
function urBackendVerify(body, signature) { // product doc 002
  const payload = JSON.stringify(body);
  const expectedSignature = crypto.createHmac('sha256', secret).update(payload).digest('hex');
  return !!signature && signature === expectedSignature;
}
process.stdout.write(JSON.stringify(requests.map(({ body, signature }) => {
  const parsed = JSON.parse(body);
  return [verifyWebhookSignature(parsed, signature, secret), urBackendVerify(parsed, signature)];
})));
`
	out := runNode(t, script, secret, requests)
	var verdicts [][2]bool
	if err := json.Unmarshal(out, &verdicts); err != nil {
		t.Fatalf("decoding node output %q: %v", out, err)
	}
	for i, v := range verdicts {
		want := i < len(events)
		if v[0] != want || v[1] != want {
			t.Errorf("request %d (%s): doc 000 verifier %v, doc 002 verifier %v, want %v", i, requests[i].Body, v[0], v[1], want)
		}
	}
	if len(verdicts) != len(requests) {
		t.Fatalf("node returned %d verdicts for %d requests", len(verdicts), len(requests))
	}
}

// TestOneRequestVerifiesWithEveryRecipe is a receiver migrating from hex HMAC to Standard Webhooks with one
// secret: the same request, signed by HeadersAll with a generated whsec_ secret, passes product document 000's
// verifier (X-Webhook-Signature), document 002's (X-urBackend-Signature), both run in node with the secret string
// as WEBHOOK_SECRET, and the official Standard Webhooks library given that same string.
func TestOneRequestVerifiesWithEveryRecipe(t *testing.T) {
	secret, err := signing.GenerateSecret(signing.SchemeStandardWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := envelope.Build(envelope.FormatEnvelope, envelope.Event{Type: "order.created", TenantID: "123",
		OccurredAt: time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC), Data: []byte(`{"order_id":1001,"total":299.990,"s":"\u2028 <&>"}`)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := signing.HeadersAll([]signing.Signature{
		{Scheme: signing.SchemeHMACSHA256Hex},
		{Scheme: signing.SchemeStandardWebhooks},
		{Scheme: signing.SchemeHMACSHA256Hex, Header: "X-urBackend-Signature"},
	}, signing.Keys{Current: secret}, signing.Message{ID: "evt_1", Timestamp: time.Now(), Body: body})
	if err != nil {
		t.Fatal(err)
	}

	wh := officialWebhook(t, secret)
	if err := wh.Verify(body, h); err != nil {
		t.Errorf("official Standard Webhooks library rejects the request: %v", err)
	}

	const script = `
const crypto = require('crypto');
const WEBHOOK_SECRET = process.argv[1];
const { body, headers } = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const req = { body: JSON.parse(body), headers };
function verifyWebhookSignature(payload, signature, secret) { // product doc 000
  const expectedSignature = crypto.createHmac('sha256', secret).update(JSON.stringify(payload)).digest('hex');
  return signature.length === expectedSignature.length &&
    crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expectedSignature));
}
function urBackendVerify() { // product doc 002
  const signature = req.headers['x-urbackend-signature'];
  const payload = JSON.stringify(req.body);
  const expectedSignature = crypto.createHmac('sha256', WEBHOOK_SECRET).update(payload).digest('hex');
  return !!signature && signature === expectedSignature;
}
process.stdout.write(JSON.stringify([verifyWebhookSignature(req.body, req.headers['x-webhook-signature'], WEBHOOK_SECRET), urBackendVerify()]));
`
	// Node lower-cases header names, as http.IncomingMessage does.
	lower := map[string]string{}
	for k := range h {
		lower[strings.ToLower(k)] = h.Get(k)
	}
	out := runNode(t, script, secret, map[string]any{"body": string(body), "headers": lower})
	if string(out) != "[true,true]" {
		t.Errorf("doc 000 and doc 002 verifiers answer %s, want [true,true]", out)
	}
}

// runNode runs script in node with secret as its argument and input, as JSON, on its standard input, and returns
// what it prints.
func runNode(t *testing.T, script, secret string, input any) []byte {
	t.Helper()
	stdin, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "-e", script, secret)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("running node: %v\n%s", err, stderr.String())
	}
	return out
}

// officialWebhook is the official Standard Webhooks Go library's verifier for secret, as a receiver makes it.
func officialWebhook(t *testing.T, secret string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}
