package delivery_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/netguard"
)

// serveOn starts a receiver listening on addr (a loopback address), answering 200 with body.
func serveOn(t *testing.T, addr, body string) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestSendWithholdsAnswersFromInternalAddressesUnlessShown(t *testing.T) {
	srv := serveOn(t, "127.0.0.1", `{"internal":"secret build info"}`)
	s := newSender(delivery.SenderOptions{})

	req := post(srv.URL)
	req.Reach = delivery.Reach{}
	out := s.Send(context.Background(), req, 5*time.Second, false, testNow)
	if out.StatusCode != http.StatusOK || out.Class != delivery.ClassSucceeded {
		t.Fatalf("outcome %+v, want a 200 that succeeded", out)
	}
	if body := string(out.ResponseBody); strings.Contains(body, "secret build info") || !strings.Contains(body, "withheld") ||
		!strings.Contains(body, "webhooks.hookpost.io/show-internal-responses=true") {
		t.Errorf("response body %q: want it withheld, saying how to show it", body)
	}

	req.Reach.ShowInternalResponses = true
	if out := s.Send(context.Background(), req, 5*time.Second, false, testNow); string(out.ResponseBody) != `{"internal":"secret build info"}` {
		t.Errorf("with ShowInternalResponses: response body %q, want the receiver's", out.ResponseBody)
	}
}

func TestSendAllowsANamespacesExtraRangeOnlyToThatNamespace(t *testing.T) {
	// The operator allows 127.0.0.1 only; 127.0.0.2 (also loopback) plays a private service one namespace may reach.
	s := delivery.NewSender(delivery.SenderOptions{Guard: netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})})
	srv := serveOn(t, "127.0.0.2", "ok")

	other := post(srv.URL)
	other.Reach = delivery.Reach{ShowInternalResponses: true}
	if out := s.Send(context.Background(), other, 5*time.Second, false, testNow); out.StatusCode != 0 || !strings.Contains(out.Error, "webhooks.hookpost.io/allow-cidrs=127.0.0.0/8") {
		t.Fatalf("a namespace without the range: outcome %+v, want refused with a message naming the annotation", out)
	}

	allowed := post(srv.URL)
	allowed.Reach = delivery.Reach{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, ShowInternalResponses: true}
	if out := s.Send(context.Background(), allowed, 5*time.Second, false, testNow); out.StatusCode != http.StatusOK || string(out.ResponseBody) != "ok" {
		t.Fatalf("the namespace allowed 127.0.0.2/32: outcome %+v, want 200 ok", out)
	}

	// The allowed namespace's connection stays in its own pool: the other namespace is still refused.
	if out := s.Send(context.Background(), other, 5*time.Second, false, testNow); out.StatusCode != 0 || out.Class == delivery.ClassSucceeded {
		t.Errorf("after the allowed namespace connected: outcome %+v for a namespace without the range, want refused", out)
	}

	// A namespace whose setting could not be read is told so where it looks: the refusal message.
	bad := post(srv.URL)
	bad.Reach = delivery.Reach{Ignored: `namespace shop's webhooks.hookpost.io/allow-cidrs entry "127.0.0.2/33" is not a range and was ignored`}
	if out := s.Send(context.Background(), bad, 5*time.Second, false, testNow); !strings.Contains(out.Error, `"127.0.0.2/33" is not a range`) {
		t.Errorf("refusal %q does not mention the ignored entry", out.Error)
	}
}
