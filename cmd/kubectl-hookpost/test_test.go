package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/signing"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

func TestTestCreatesATestDeliveryThatIsDelivered(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	recv := harness.NewReceiver()
	defer recv.Close()
	sub := createReadySubscription(t, fixtures.Subscription(ns, "orders", recv.URL+"/hooks", fixtures.InsecureHTTP()))

	out := mustRun(t, "test", "orders", "--event", "order.created", "--tenant", "123", "--wait", "-n", ns)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	name := lines[0]
	if !strings.Contains(out, "Succeeded") {
		t.Errorf("--wait output does not say Succeeded:\n%s", out)
	}

	d := &hookpostv1.WebhookDelivery{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatalf("the printed name %q is not a delivery: %v", name, err)
	}
	if !d.Spec.Test || d.Spec.SubscriptionName != "orders" || d.Spec.Event.Type != "order.created" || d.Spec.Event.TenantID != "123" {
		t.Errorf("delivery spec = %+v", d.Spec)
	}
	if want := hookpostv1.DeliveryName("orders", d.Spec.Event.ID); name != want {
		t.Errorf("name = %q, want DeliveryName(orders, %s) = %q", name, d.Spec.Event.ID, want)
	}
	if age := time.Since(d.Spec.Event.OccurredAt.Time); age < 0 || age > time.Minute {
		t.Errorf("occurredAt %s is not now", d.Spec.Event.OccurredAt)
	}
	if d.Labels[hookpostv1.LabelSubscription] != "orders" || d.Labels[hookpostv1.LabelTest] != "true" {
		t.Errorf("labels = %v", d.Labels)
	}
	if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].UID != sub.UID || d.OwnerReferences[0].Kind != "WebhookSubscription" {
		t.Errorf("owner references = %+v, want the subscription", d.OwnerReferences)
	}
	if d.Status.Phase != hookpostv1.DeliverySucceeded {
		t.Errorf("phase = %s after --wait", d.Status.Phase)
	}

	got := recv.Requests("/hooks")
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(got))
	}
	req := got[0]
	if req.Header.Get("X-Hookpost-Test") != "true" {
		t.Errorf("X-Hookpost-Test = %q, want true", req.Header.Get("X-Hookpost-Test"))
	}
	var body struct {
		Event    string          `json:"event"`
		TenantID int             `json:"tenant_id"`
		Data     json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(req.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Event != "order.created" || body.TenantID != 123 || !jsonEqual(t, body.Data, []byte(sampleData["order.created"])) {
		t.Errorf("body = %s, want doc 000's order.created example", req.Body)
	}

	// inspect shows the body byte for byte and, for HMACSHA256Hex, the very signature the receiver got.
	out = mustRun(t, "inspect", name, "-n", ns)
	if !strings.Contains(out, "\n"+string(req.Body)+"\n") {
		t.Errorf("inspect does not show the received body %s byte for byte:\n%s", req.Body, out)
	}
	sigLine := "X-Webhook-Signature: " + req.Header.Get("X-Webhook-Signature")
	if !strings.Contains(out, sigLine) {
		t.Errorf("inspect does not show %q", sigLine)
	}
	for _, want := range []string{"POST " + recv.URL + "/hooks", "X-Event-Id: " + d.Spec.Event.ID, "X-Hookpost-Test: true", "Succeeded", "200", `{"received":true}`} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q", want)
		}
	}

	var in inspection
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", name, "-n", ns, "-o", "json")), &in); err != nil {
		t.Fatal(err)
	}
	if in.Request == nil || in.Request.Body != string(req.Body) {
		t.Fatalf("inspect -o json request = %+v, want body %s", in.Request, req.Body)
	}
	if len(in.History) != 1 || in.History[0].StatusCode != 200 || in.History[0].Number != 1 {
		t.Errorf("history = %+v", in.History)
	}

	// The signature inspect shows verifies with the subscription's secret, by the library and by `verify`.
	secret := strings.TrimSpace(mustRun(t, "secret", "orders", "-n", ns))
	key, err := signing.Key(signing.SchemeHMACSHA256Hex, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.VerifyHMACHex(key, []byte(in.Request.Body), in.Request.Headers.Get("X-Webhook-Signature")); err != nil {
		t.Errorf("inspect's signature does not verify: %v", err)
	}
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(bodyFile, req.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "verify", "--secret", secret, "--body", bodyFile, "--header", sigLine); r.code != 0 || !strings.HasPrefix(r.stdout, "VALID") {
		t.Errorf("verify of the received request: exit %d, %s", r.code, r.stdout)
	}
}

func TestFilterNote(t *testing.T) {
	sample := []byte(sampleData["order.created"]) // total 299.99
	for _, tc := range []struct {
		name, expression string
		// want is a part of the note; "" means no note.
		want string
	}{
		{name: "no filter"},
		{name: "accepted", expression: "data.total > 100", want: "spec.filter.expression accepts this event."},
		{name: "refused", expression: "data.total > 1000", want: "is false for this event, so from a source it would not be delivered; the test event is sent anyway"},
		{name: "undecided", expression: "data.amount > 100", want: "cannot decide this event (evaluation: no such key: amount)"},
		{name: "invalid", expression: "amount >", want: "does not compile, so no event from a source is delivered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := fixtures.Subscription("ns", "orders", "https://example.com/hooks", fixtures.FilterExpression(tc.expression))
			note := filterNote(sub, testDelivery(sub, "order.created", "123", "", sample, "e1", time.Now()))
			if (tc.want == "") != (note == "") || !strings.Contains(note, tc.want) {
				t.Fatalf("note = %q, want one containing %q", note, tc.want)
			}
		})
	}
}

func TestOrderingNote(t *testing.T) {
	sample := []byte(sampleData["order.created"])
	for _, tc := range []struct {
		name, key string
		// want is a part of the note; "" means no note.
		want string
	}{
		{name: "no ordering"},
		{name: "the tenant", key: "tenant", want: `spec.ordering.key gives this event the key "123"; the test event is sent at once, outside that key's order.`},
		{name: "a missing field", key: "data.nothing", want: `cannot key this event (evaluation: no such key: nothing), so from a source it would be ordered under the key ""`},
		{name: "invalid", key: "tenant ==", want: "does not compile, so events from a source are ordered under the key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := fixtures.Subscription("ns", "orders", "https://example.com/hooks")
			if tc.key != "" {
				sub.Spec.Ordering = &hookpostv1.Ordering{Key: tc.key}
			}
			note := orderingNote(sub, testDelivery(sub, "order.created", "123", "", sample, "e1", time.Now()))
			if (tc.want == "") != (note == "") || !strings.Contains(note, tc.want) {
				t.Fatalf("note = %q, want one containing %q", note, tc.want)
			}
		})
	}
}

func TestTestWithoutSampleDataNeedsData(t *testing.T) {
	ns := newNamespace(t)
	recv := harness.NewReceiver()
	defer recv.Close()
	createReadySubscription(t, fixtures.Subscription(ns, "custom", recv.URL+"/c", fixtures.InsecureHTTP()))

	r := run(t, "", "test", "custom", "--event", "invoice.paid", "-n", ns)
	if r.code == 0 || !strings.Contains(r.stderr, "--data") {
		t.Errorf("an event type without sample data and no --data: exit %d, %s", r.code, r.stderr)
	}
	out := mustRun(t, "test", "custom", "--event", "invoice.paid", "--data", `{"invoice_id": 9}`, "--wait", "-n", ns)
	got := recv.Requests("/c")
	if len(got) != 1 || !strings.Contains(string(got[0].Body), `"data":{"invoice_id":9}`) {
		t.Errorf("receiver got %d requests: %v\n%s", len(got), got, out)
	}
}

// jsonEqual compares two JSON texts by value: the API server stores data as a map, so key order is not kept.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}
