package delivery_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/envelope"
	"github.com/hookpost/hookpost/internal/signing"
)

// TestCloudEventsSDKReceivesBothModes sends both CloudEvents formats, built and sent by the real request builder
// and Sender, to a receiver made with the official CloudEvents Go SDK (its HTTP protocol's receive handler), and
// checks that the SDK decodes every attribute, the data and the extension, and that the signature verifies.
func TestCloudEventsSDKReceivesBothModes(t *testing.T) {
	for _, tt := range []struct {
		format          envelope.Format
		wantContentType string
		// wantBody is what the receiver verifies the signature over: the whole event, or the data alone.
		wantBody string
	}{
		{
			format:          envelope.FormatCloudEvents,
			wantContentType: "application/cloudevents+json; charset=utf-8",
			wantBody: `{"specversion":"1.0","id":"evt_2f1c","source":"/hookpost/shop/orders","type":"order.created","subject":"orders",` +
				`"time":"2025-11-16T10:30:00Z","datacontenttype":"application/json","tenantid":"123","data":{"order_id":1001,"total":299.99}}`,
		},
		{
			format:          envelope.FormatCloudEventsBinary,
			wantContentType: "application/json",
			wantBody:        `{"order_id":1001,"total":299.99}`,
		},
	} {
		t.Run(string(tt.format), func(t *testing.T) {
			type received struct {
				event  cloudevents.Event
				header http.Header
				body   []byte
			}
			got := make(chan received, 1)
			p, err := cehttp.New()
			if err != nil {
				t.Fatal(err)
			}
			var raw received
			sdk, err := cloudevents.NewHTTPReceiveHandler(context.Background(), p, func(_ context.Context, e cloudevents.Event) {
				raw.event = e
				got <- raw
			})
			if err != nil {
				t.Fatal(err)
			}
			// The SDK's handler reads the request; keep a copy of the bytes to check the signature as a receiver would.
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				raw.header, raw.body = r.Header.Clone(), body
				r.Body = io.NopCloser(strings.NewReader(string(body)))
				sdk.ServeHTTP(w, r)
			})

			a := testAttempt(srv.URL + "/hooks")
			a.Format = tt.format
			a.Event.Collection = "orders"
			req, err := delivery.BuildRequest(a, "Hookpost/1.2.3")
			if err != nil {
				t.Fatal(err)
			}
			if out := newSender(delivery.SenderOptions{}).Send(context.Background(), req, a.Timeout, false, a.Now); out.Class != delivery.ClassSucceeded {
				t.Fatalf("outcome = %+v", out)
			}
			var r received
			select {
			case r = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("the SDK's receiver decoded no event")
			}

			e := r.event
			if err := e.Validate(); err != nil {
				t.Errorf("the SDK finds the event invalid: %v", err)
			}
			for name, pair := range map[string][2]string{
				"specversion":     {e.SpecVersion(), "1.0"},
				"id":              {e.ID(), "evt_2f1c"},
				"type":            {e.Type(), "order.created"},
				"source":          {e.Source(), "/hookpost/shop/orders"},
				"subject":         {e.Subject(), "orders"},
				"datacontenttype": {e.DataContentType(), "application/json"},
			} {
				if pair[0] != pair[1] {
					t.Errorf("%s = %q, want %q", name, pair[0], pair[1])
				}
			}
			if want := time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC); !e.Time().Equal(want) {
				t.Errorf("time = %s, want %s", e.Time(), want)
			}
			if tenant, err := e.Context.GetExtension("tenantid"); err != nil || tenant != "123" {
				t.Errorf("extension tenantid = %v (%v), want 123", tenant, err)
			}
			var data struct {
				OrderID int     `json:"order_id"`
				Total   float64 `json:"total"`
			}
			if err := e.DataAs(&data); err != nil || data.OrderID != 1001 || data.Total != 299.99 {
				t.Errorf("data = %+v (%v), want order 1001 of 299.99", data, err)
			}
			if ct := r.header.Get("Content-Type"); ct != tt.wantContentType {
				t.Errorf("Content-Type = %q, want %q", ct, tt.wantContentType)
			}
			if binary := r.header.Get("Ce-Id") != ""; binary != (tt.format == envelope.FormatCloudEventsBinary) {
				t.Errorf("ce-id header present = %t in %s", binary, tt.format)
			}
			if string(r.body) != tt.wantBody {
				t.Errorf("body\n got %s\nwant %s", r.body, tt.wantBody)
			}
			if !json.Valid(r.body) {
				t.Errorf("body is not JSON: %s", r.body)
			}
			// The signature covers the body: the event in structured mode, the data in binary mode.
			if err := signing.VerifyHMACHex([]byte(a.Keys.Current), r.body, r.header.Get(a.Signatures[0].Header)); err != nil {
				t.Errorf("signature over the body does not verify: %v", err)
			}
		})
	}
}

// TestStaticHeadersCannotReplaceCloudEventsAttributes: a static ce-id must not change the id a receiver
// de-duplicates on.
func TestStaticHeadersCannotReplaceCloudEventsAttributes(t *testing.T) {
	a := testAttempt("https://receiver.example/hooks")
	a.Format = envelope.FormatCloudEventsBinary
	a.StaticHeaders = map[string]string{"ce-id": "forged", "Ce-Type": "forged", "ce-partition": "p1"}
	req, err := delivery.BuildRequest(a, "Hookpost/1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Values("Ce-Id"); len(got) != 1 || got[0] != "evt_2f1c" {
		t.Errorf("ce-id = %q, want evt_2f1c only", got)
	}
	if got := req.Header.Get("Ce-Type"); got != "order.created" {
		t.Errorf("ce-type = %q, want order.created", got)
	}
	if got := req.Header.Get("Ce-Partition"); got != "p1" {
		t.Errorf("a static extension attribute ce-partition = %q, want it sent", got)
	}
}
