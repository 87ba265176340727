package delivery_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/envelope"
	"github.com/hookpost/hookpost/internal/signing"
)

// testSecret is a Standard Webhooks style secret (whsec_ + base64 of 24 bytes);
// the hex scheme signs with the same string.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func testAttempt(url string) delivery.Attempt {
	target := delivery.Target{
		Namespace:    "shop",
		Subscription: "orders",
		URL:          url,
		Format:       envelope.FormatEnvelope,
		Signatures:   []signing.Signature{{Scheme: signing.SchemeHMACSHA256Hex, Header: "X-Webhook-Signature"}},
		Timeout:      5 * time.Second,
	}
	return target.Attempt(envelope.Event{
		ID:         "evt_2f1c",
		Type:       "order.created",
		TenantID:   "123",
		OccurredAt: time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC),
		Data:       []byte(`{"order_id":1001,"total":299.99}`),
	}, signing.Keys{Current: testSecret}, "orders-evt-2f1c", 1, false, testNow)
}

func TestBuildRequestHeaders(t *testing.T) {
	a := testAttempt("https://receiver.example/hooks")
	a.Number = 3
	a.Test = true
	a.StaticHeaders = map[string]string{
		"Authorization":       "Bearer receiver-token",
		"x-tenant":            "acme",
		"x-event-id":          "forged",
		"X-Webhook-Signature": "forged",
		"X-Hookpost-Attempt":  "99",
		"User-Agent":          "curl/8",
		"Content-Length":      "1",
		"Host":                "evil.example",
	}
	req, err := delivery.BuildRequest(a, "Hookpost/1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodPost || req.URL != a.URL {
		t.Errorf("request line = %s %s", req.Method, req.URL)
	}
	want := map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          "Hookpost/1.2.3",
		"X-Event-Id":          "evt_2f1c",
		"X-Hookpost-Delivery": "orders-evt-2f1c",
		"X-Hookpost-Attempt":  "3",
		"X-Hookpost-Test":     "true",
		"Authorization":       "Bearer receiver-token",
		"X-Tenant":            "acme",
		"Content-Length":      "",
		"Host":                "",
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if got := req.Header.Values("X-Webhook-Signature"); len(got) != 1 || got[0] == "forged" {
		t.Errorf("X-Webhook-Signature = %q, want Hookpost's own signature only", got)
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			if strings.Contains(v, testSecret) || strings.Contains(v, strings.TrimPrefix(testSecret, "whsec_")) {
				t.Errorf("header %s carries the secret", k)
			}
		}
	}
}

func TestBuildRequestOnlyMarksTestEvents(t *testing.T) {
	req, err := delivery.BuildRequest(testAttempt("https://receiver.example/hooks"), "Hookpost/1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := req.Header["X-Hookpost-Test"]; ok {
		t.Error("a real event is marked as a test")
	}
}

func TestBuildRequestEventIDStableAcrossAttempts(t *testing.T) {
	a := testAttempt("https://receiver.example/hooks")
	a.Signatures = []signing.Signature{{Scheme: signing.SchemeStandardWebhooks}}
	first, err := delivery.BuildRequest(a, "Hookpost/1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	a.Number = 2
	a.Now = a.Now.Add(time.Minute)
	retry, err := delivery.BuildRequest(a, "Hookpost/1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"X-Event-Id", "Webhook-Id"} {
		if first.Header.Get(k) != "evt_2f1c" || retry.Header.Get(k) != "evt_2f1c" {
			t.Errorf("%s = %q then %q, want evt_2f1c on both attempts", k, first.Header.Get(k), retry.Header.Get(k))
		}
	}
	if string(first.Body) != string(retry.Body) {
		t.Error("the body changed between attempts")
	}
	if first.Header.Get("Webhook-Timestamp") == retry.Header.Get("Webhook-Timestamp") {
		t.Error("the retry was not signed with its own timestamp")
	}
}

func TestBuildRequestErrorsArePermanent(t *testing.T) {
	tests := map[string]func(*delivery.Attempt){
		"unsendable URL": func(a *delivery.Attempt) { a.URL = "ftp://receiver.example/hooks" },
		"malformed data": func(a *delivery.Attempt) { a.Event.Data = []byte(`{"order_id":`) },
		"unknown format": func(a *delivery.Attempt) { a.Format = "Protobuf" },
		"unknown scheme": func(a *delivery.Attempt) { a.Signatures = []signing.Signature{{Scheme: "md5"}} },
		"no scheme":      func(a *delivery.Attempt) { a.Signatures = nil },
		"two signatures in one header": func(a *delivery.Attempt) {
			a.Signatures = []signing.Signature{{Scheme: signing.SchemeHMACSHA256Hex}, {Scheme: signing.SchemeHMACSHA256Hex, Header: "x-webhook-signature"}}
		},
		"a StandardWebhooks signature with a hex secret": func(a *delivery.Attempt) {
			a.Signatures = append(a.Signatures, signing.Signature{Scheme: signing.SchemeStandardWebhooks})
			a.Keys.Current = "5d41402abc4b2a76b9719d911017c592"
		},
		"header value with CRLF": func(a *delivery.Attempt) {
			a.StaticHeaders = map[string]string{"X-Team": "a\r\nX-Injected: 1"}
		},
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			a := testAttempt("https://receiver.example/hooks")
			mutate(&a)
			_, err := delivery.BuildRequest(a, "Hookpost/1.2.3")
			if !errors.Is(err, delivery.ErrInvalidRequest) || delivery.Classify(0, err, true) != delivery.ClassPermanent {
				t.Fatalf("BuildRequest error = %v, want a permanent invalid request", err)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error %q carries the secret", err)
			}
		})
	}
}

// TestReceiverSeesVerifiableRequest sends built requests to a receiver that
// checks what a real one would: the idempotency key and the signature.
func TestReceiverSeesVerifiableRequest(t *testing.T) {
	for _, scheme := range []signing.Scheme{signing.SchemeHMACSHA256Hex, signing.SchemeStandardWebhooks} {
		t.Run(string(scheme), func(t *testing.T) {
			type seen struct {
				header http.Header
				body   []byte
			}
			got := make(chan seen, 2)
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				got <- seen{r.Header.Clone(), body}
			})
			s := newSender(delivery.SenderOptions{})
			a := testAttempt(srv.URL + "/hooks")
			a.Signatures = []signing.Signature{{Scheme: scheme, Header: "X-Webhook-Signature"}}
			for n := 1; n <= 2; n++ {
				a.Number = n
				a.Now = testNow.Add(time.Duration(n) * time.Minute)
				req, err := delivery.BuildRequest(a, "Hookpost/1.2.3")
				if err != nil {
					t.Fatal(err)
				}
				if out := s.Send(context.Background(), req, a.Timeout, false, a.Now); out.Class != delivery.ClassSucceeded {
					t.Fatalf("attempt %d outcome = %+v", n, out)
				}
				r := <-got
				if id := r.header.Get("X-Event-Id"); id != "evt_2f1c" {
					t.Errorf("attempt %d X-Event-Id = %q, want evt_2f1c", n, id)
				}
				if err := verify(scheme, a, r.header, r.body); err != nil {
					t.Errorf("attempt %d signature does not verify: %v", n, err)
				}
			}
		})
	}
}

// verify checks a received request the way the scheme's receivers do.
func verify(scheme signing.Scheme, a delivery.Attempt, h http.Header, body []byte) error {
	switch scheme {
	case signing.SchemeHMACSHA256Hex:
		return signing.VerifyHMACHex([]byte(a.Keys.Current), body, h.Get("X-Webhook-Signature"))
	case signing.SchemeStandardWebhooks:
		return signing.VerifyStandard(a.Keys.Current, h, body, a.Now, 5*time.Minute)
	}
	return errors.New("unknown scheme " + string(scheme))
}

// TestBuildRequestCarriesEverySignature is a receiver migrating from hex HMAC to Standard Webhooks: one request
// carries both, plus a second hex header, each keyed with the one whsec_ secret, and a static header cannot forge
// any of them.
func TestBuildRequestCarriesEverySignature(t *testing.T) {
	a := testAttempt("https://receiver.example/hooks")
	a.Signatures = []signing.Signature{
		{Scheme: signing.SchemeHMACSHA256Hex},
		{Scheme: signing.SchemeStandardWebhooks},
		{Scheme: signing.SchemeHMACSHA256Hex, Header: "X-urBackend-Signature"},
	}
	a.StaticHeaders = map[string]string{"x-urbackend-signature": "forged", "X-Team": "growth"}
	req, err := delivery.BuildRequest(a, "Hookpost/1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	for _, header := range []string{"X-Webhook-Signature", "X-urBackend-Signature"} {
		if got := req.Header.Values(header); len(got) != 1 {
			t.Errorf("%s = %q, want one signature", header, got)
		}
		// The hex HMAC key is the secret string as the receiver stores it, whsec_ prefix and all.
		if err := signing.VerifyHMACHex([]byte(testSecret), req.Body, req.Header.Get(header)); err != nil {
			t.Errorf("%s does not verify: %v", header, err)
		}
	}
	if err := signing.VerifyStandard(testSecret, req.Header, req.Body, a.Now, 5*time.Minute); err != nil {
		t.Errorf("webhook-signature does not verify: %v", err)
	}
	if req.Header.Get("X-Team") != "growth" {
		t.Errorf("X-Team = %q, want the static header", req.Header.Get("X-Team"))
	}
}
