package delivery_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/netguard"
)

var testNow = time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC)

// loopbackGuard is the guard an operator started with
// --allow-cidr=127.0.0.0/8 --allow-cidr=::1/128 would use.
func loopbackGuard() *netguard.Guard {
	return netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})
}

func newSender(opts delivery.SenderOptions) *delivery.Sender {
	if opts.Guard == nil {
		opts.Guard = loopbackGuard()
	}
	return delivery.NewSender(opts)
}

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// heldReceiver answers only once release is called (or the request is canceled), so an attempt to it holds its
// slots for as long as a test needs; arrived receives a value as each request comes in. release is idempotent
// and also runs when the test ends, before the server closes.
func heldReceiver(t *testing.T, capacity int) (srv *httptest.Server, arrived <-chan struct{}, release func()) {
	t.Helper()
	in := make(chan struct{}, capacity)
	released := make(chan struct{})
	srv = serve(t, func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		select {
		case <-released:
		case <-r.Context().Done():
		}
	})
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	t.Cleanup(release)
	return srv, in, release
}

// post is a request to url. The receivers here listen on loopback, an internal address whose answers are withheld
// by default: these requests come from a namespace that asked to see them.
func post(url string) delivery.Request {
	return delivery.Request{
		Method: http.MethodPost,
		URL:    url,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   []byte(`{"event":"order.created"}`),
		Reach:  delivery.Reach{ShowInternalResponses: true},
	}
}

func TestSendStatusOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		retryOn4xx bool
		wantClass  delivery.Class
		wantError  string
		wantRetry  time.Duration
	}{
		{name: "success", status: 200, wantClass: delivery.ClassSucceeded},
		{name: "server error retries", status: 500, wantClass: delivery.ClassRetry, wantError: "HTTP 500 Internal Server Error"},
		{name: "not found is permanent", status: 404, wantClass: delivery.ClassPermanent, wantError: "HTTP 404 Not Found"},
		{name: "not found retries with retryOn4xx", status: 404, retryOn4xx: true, wantClass: delivery.ClassRetry, wantError: "HTTP 404 Not Found"},
		{name: "gone stops and says so", status: 410, retryOn4xx: true, wantClass: delivery.ClassGone, wantError: "HTTP 410 Gone: the receiver says this endpoint no longer exists; not retrying"},
		{name: "429 with delta Retry-After", status: 429, header: map[string]string{"Retry-After": "120"}, wantClass: delivery.ClassRetry, wantError: "HTTP 429 Too Many Requests", wantRetry: 2 * time.Minute},
		{name: "503 with HTTP-date Retry-After", status: 503, header: map[string]string{"Retry-After": "Sun, 16 Nov 2025 10:40:00 GMT"}, wantClass: delivery.ClassRetry, wantError: "HTTP 503 Service Unavailable", wantRetry: 10 * time.Minute},
		{name: "Retry-After reported as sent (the retry policy caps it)", status: 429, header: map[string]string{"Retry-After": "86400"}, wantClass: delivery.ClassRetry, wantError: "HTTP 429 Too Many Requests", wantRetry: 24 * time.Hour},
		{name: "Retry-After honoured on 500", status: 500, header: map[string]string{"Retry-After": "120"}, wantClass: delivery.ClassRetry, wantError: "HTTP 500 Internal Server Error", wantRetry: 2 * time.Minute},
		{name: "Retry-After honoured on 502", status: 502, header: map[string]string{"Retry-After": "30"}, wantClass: delivery.ClassRetry, wantError: "HTTP 502 Bad Gateway", wantRetry: 30 * time.Second},
		{name: "Retry-After honoured on a 4xx retried with retryOn4xx", status: 400, header: map[string]string{"Retry-After": "60"}, retryOn4xx: true, wantClass: delivery.ClassRetry, wantError: "HTTP 400 Bad Request", wantRetry: time.Minute},
		{name: "Retry-After ignored on a 4xx that is not retried", status: 400, header: map[string]string{"Retry-After": "60"}, wantClass: delivery.ClassPermanent, wantError: "HTTP 400 Bad Request"},
		{name: "Retry-After ignored on 410, which is never retried", status: 410, header: map[string]string{"Retry-After": "60"}, retryOn4xx: true, wantClass: delivery.ClassGone, wantError: "HTTP 410 Gone: the receiver says this endpoint no longer exists; not retrying"},
		{name: "invalid Retry-After on 500 leaves the schedule", status: 500, header: map[string]string{"Retry-After": "soon"}, wantClass: delivery.ClassRetry, wantError: "HTTP 500 Internal Server Error"},
	}
	s := newSender(delivery.SenderOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, "answer")
			})
			out := s.Send(context.Background(), post(srv.URL), 5*time.Second, tt.retryOn4xx, testNow)
			if out.StatusCode != tt.status || out.Class != tt.wantClass || out.Error != tt.wantError || out.RetryAfter != tt.wantRetry {
				t.Errorf("outcome = {status %d, class %s, error %q, retryAfter %v}, want {%d, %s, %q, %v}",
					out.StatusCode, out.Class, out.Error, out.RetryAfter, tt.status, tt.wantClass, tt.wantError, tt.wantRetry)
			}
			if string(out.ResponseBody) != "answer" {
				t.Errorf("response body = %q, want %q", out.ResponseBody, "answer")
			}
			if out.Duration <= 0 {
				t.Errorf("duration = %v, want > 0", out.Duration)
			}
		})
	}
}

func TestSendDeliversMethodHeadersAndBody(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
	})
	req := post(srv.URL + "/hooks/orders")
	req.Header.Set("X-Event-Id", "evt_1")
	out := newSender(delivery.SenderOptions{}).Send(context.Background(), req, 5*time.Second, false, testNow)
	if out.Class != delivery.ClassSucceeded {
		t.Fatalf("outcome = %+v", out)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/hooks/orders" || got.Header.Get("X-Event-Id") != "evt_1" || !bytes.Equal(gotBody, req.Body) {
		t.Errorf("receiver saw %s %s X-Event-Id=%q body=%q", got.Method, got.URL.Path, got.Header.Get("X-Event-Id"), gotBody)
	}
	if ae := got.Header.Get("Accept-Encoding"); ae != "" {
		t.Errorf("receiver saw Accept-Encoding %q that the Request did not list", ae)
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/moved", func(http.ResponseWriter, *http.Request) { followed.Add(1) })
	srv := serve(t, mux.ServeHTTP)
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/moved", http.StatusFound)
	})

	out := newSender(delivery.SenderOptions{}).Send(context.Background(), post(srv.URL+"/hook"), 5*time.Second, false, testNow)
	if out.StatusCode != http.StatusFound || out.Class != delivery.ClassRetry {
		t.Errorf("outcome = {status %d, class %s}, want {302, Retry}", out.StatusCode, out.Class)
	}
	if want := "redirect 302 to " + srv.URL + "/moved not followed"; out.Error != want {
		t.Errorf("error = %q, want %q", out.Error, want)
	}
	if followed.Load() != 0 {
		t.Error("the redirect target received the webhook")
	}
}

func TestSendTimeoutRetries(t *testing.T) {
	srv, _, _ := heldReceiver(t, 1)

	out := newSender(delivery.SenderOptions{}).Send(context.Background(), post(srv.URL), 50*time.Millisecond, false, testNow)
	if out.StatusCode != 0 || out.Class != delivery.ClassRetry || out.Error != "timeout after 50ms" {
		t.Errorf("outcome = {status %d, class %s, error %q}, want {0, Retry, timeout after 50ms}", out.StatusCode, out.Class, out.Error)
	}
}

func TestSendConnectionRefusedRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	out := newSender(delivery.SenderOptions{}).Send(context.Background(), post("http://"+addr+"/hook"), 5*time.Second, false, testNow)
	if out.Class != delivery.ClassRetry || out.Error != "connection refused" {
		t.Errorf("outcome = {class %s, error %q}, want {Retry, connection refused}", out.Class, out.Error)
	}
}

func TestSendVerifiesTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	// The refused handshake is the point of the second case; keep it out of test output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	t.Run("trusted by the configured pool", func(t *testing.T) {
		s := newSender(delivery.SenderOptions{TLSConfig: &tls.Config{RootCAs: pool}})
		out := s.Send(context.Background(), post(srv.URL), 5*time.Second, false, testNow)
		if out.Class != delivery.ClassSucceeded {
			t.Errorf("outcome = {class %s, error %q}, want Succeeded", out.Class, out.Error)
		}
	})
	t.Run("untrusted with the system roots", func(t *testing.T) {
		out := newSender(delivery.SenderOptions{}).Send(context.Background(), post(srv.URL), 5*time.Second, false, testNow)
		want := "TLS: certificate signed by unknown authority"
		if out.Class != delivery.ClassTLS || out.Error != want {
			t.Errorf("outcome = {class %s, error %q}, want {TLS, %q}", out.Class, out.Error, want)
		}
	})
}

func TestSendGuardRefusesLoopbackByDefault(t *testing.T) {
	var hits atomic.Int32
	srv := serve(t, func(http.ResponseWriter, *http.Request) { hits.Add(1) })

	s := delivery.NewSender(delivery.SenderOptions{Guard: netguard.New(nil)})
	out := s.Send(context.Background(), post(srv.URL), 5*time.Second, true, testNow)
	want := "destination 127.0.0.1 is in the loopback range 127.0.0.0/8, which Hookpost refuses by default; a cluster admin allows it for one namespace with the namespace annotation webhooks.hookpost.io/allow-cidrs=127.0.0.0/8, or for every namespace by starting the operator with --allow-cidr=127.0.0.0/8"
	if out.Class != delivery.ClassPermanent || out.Error != want {
		t.Errorf("outcome = {class %s, error %q}, want {Permanent, %q}", out.Class, out.Error, want)
	}
	if hits.Load() != 0 {
		t.Error("the receiver was reached through the guard")
	}
}

func TestSendRejectsUnsendableURL(t *testing.T) {
	for _, u := range []string{"file:///etc/passwd", "/relative/hook", "http://%zz", "https://"} {
		out := newSender(delivery.SenderOptions{}).Send(context.Background(), post(u), time.Second, true, testNow)
		if out.Class != delivery.ClassPermanent || !strings.HasPrefix(out.Error, "invalid request: ") {
			t.Errorf("Send(%q) = {class %s, error %q}, want Permanent invalid request", u, out.Class, out.Error)
		}
	}
}

func TestSendKeepsOnlyFirstKiBOfResponse(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(big)
	})
	out := newSender(delivery.SenderOptions{}).Send(context.Background(), post(srv.URL), 5*time.Second, false, testNow)
	if len(out.ResponseBody) != 1024 || !bytes.Equal(out.ResponseBody, big[:1024]) {
		t.Errorf("response body is %d bytes, want the first 1024", len(out.ResponseBody))
	}
}

func TestSendReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// More than the recorded 1 KiB, so reuse depends on draining the rest.
		_, _ = w.Write(bytes.Repeat([]byte("x"), 8<<10))
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	s := newSender(delivery.SenderOptions{})
	for range 5 {
		if out := s.Send(context.Background(), post(srv.URL), 5*time.Second, false, testNow); out.Class != delivery.ClassSucceeded {
			t.Fatalf("outcome = %+v", out)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 sequential attempts opened %d connections, want 1", n)
	}
}

// TestSlowHostDoesNotStarveOthers fills a slow host's only slot, queues a second
// attempt behind it, and shows an attempt to another host still completes.
// With the slots taken in the other order the queued attempt would hold the last
// global slot and the fast attempt would never start.
func TestSlowHostDoesNotStarveOthers(t *testing.T) {
	slow, arrived, release := heldReceiver(t, 2)
	fast := serve(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })

	s := newSender(delivery.SenderOptions{MaxConcurrent: 2, MaxPerHost: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	slowDone := make(chan delivery.Outcome, 2)
	go func() { slowDone <- s.Send(ctx, post(slow.URL), time.Minute, false, testNow) }()
	<-arrived // the first slow attempt holds the slow host's slot and one global slot
	go func() { slowDone <- s.Send(ctx, post(slow.URL), time.Minute, false, testNow) }()
	for s.HostUsers(slow.URL) != 2 { // the second waits for the slow host's slot
		time.Sleep(time.Millisecond)
	}
	if n := s.InFlight(); n != 1 {
		t.Errorf("InFlight = %d while one attempt runs and one waits, want 1", n)
	}

	fastDone := make(chan delivery.Outcome, 1)
	go func() { fastDone <- s.Send(ctx, post(fast.URL), time.Minute, false, testNow) }()
	select {
	case out := <-fastDone:
		if out.Class != delivery.ClassSucceeded {
			t.Errorf("fast host outcome = %+v", out)
		}
	case <-slowDone:
		t.Fatal("a slow attempt finished before it was released")
	case <-time.After(30 * time.Second):
		t.Fatal("the fast host's attempt is stuck behind the slow host")
	}

	release()
	for range 2 {
		if out := <-slowDone; out.Class != delivery.ClassSucceeded {
			t.Errorf("slow host outcome = %+v", out)
		}
	}
	if n := s.InFlight(); n != 0 {
		t.Errorf("InFlight = %d after all attempts finished, want 0", n)
	}
}

func TestSendGivesUpWaitingWhenCanceled(t *testing.T) {
	slow, arrived, release := heldReceiver(t, 1)
	defer release()
	s := newSender(delivery.SenderOptions{MaxPerHost: 1})
	go s.Send(context.Background(), post(slow.URL), time.Minute, false, testNow)
	<-arrived

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan delivery.Outcome, 1)
	go func() { done <- s.Send(ctx, post(slow.URL), time.Minute, false, testNow) }()
	for s.HostUsers(slow.URL) != 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	out := <-done
	if out.Class != delivery.ClassRetry || !strings.Contains(out.Error, "canceled while waiting") || out.StatusCode != 0 {
		t.Errorf("outcome = %+v, want a Retry that says it was canceled while waiting", out)
	}
}

// TestTrySendDoesNotWaitForABusyHost shows the worker-friendly variant: with the slow host's only slot taken,
// TrySend to it returns at once without sending, while TrySend to another host sends.
func TestTrySendDoesNotWaitForABusyHost(t *testing.T) {
	slow, arrived, release := heldReceiver(t, 1)
	fast := serve(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	s := newSender(delivery.SenderOptions{MaxConcurrent: 4, MaxPerHost: 1})

	held := make(chan delivery.Outcome, 1)
	go func() { held <- s.Send(context.Background(), post(slow.URL), time.Minute, false, testNow) }()
	<-arrived
	if out, sent := s.TrySend(context.Background(), post(slow.URL), time.Minute, false, testNow); sent {
		t.Fatalf("TrySend to a host with no free slot sent: %+v", out)
	}
	out, sent := s.TrySend(context.Background(), post(fast.URL), time.Minute, false, testNow)
	if !sent || out.Class != delivery.ClassSucceeded {
		t.Fatalf("TrySend to a free host: sent=%v outcome %+v", sent, out)
	}
	release()
	<-held
	if _, sent := s.TrySend(context.Background(), post(slow.URL), time.Minute, false, testNow); !sent {
		t.Fatal("TrySend after the slot was freed did not send")
	}
}

// TestSendRefusesHugeResponseHeaders: a receiver answering with a megabyte of headers gets a retryable failure
// that says so, and its headers are not kept in memory.
func TestSendRefusesHugeResponseHeaders(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Padding", strings.Repeat("a", 1<<20))
		w.WriteHeader(http.StatusOK)
	})
	out := newSender(delivery.SenderOptions{}).Send(context.Background(), post(srv.URL), 5*time.Second, false, testNow)
	if out.Class != delivery.ClassRetry || out.StatusCode != 0 || out.Error != "the receiver's response headers exceed 64 KiB; not read" {
		t.Fatalf("outcome = %+v, want a retry saying the headers are too large", out)
	}
}

// TestSendWithinWaitsBoundedForABusyHost: with the host's only slot held, SendWithin gives up without sending
// once its wait runs out, and sends when the slot comes free while it waits.
func TestSendWithinWaitsBoundedForABusyHost(t *testing.T) {
	slow, arrived, release := heldReceiver(t, 1)
	s := newSender(delivery.SenderOptions{MaxConcurrent: 4, MaxPerHost: 1})

	held := make(chan delivery.Outcome, 1)
	go func() { held <- s.Send(context.Background(), post(slow.URL), time.Minute, false, testNow) }()
	<-arrived
	if out, sent := s.SendWithin(context.Background(), post(slow.URL), time.Minute, false, testNow, 20*time.Millisecond); sent {
		t.Fatalf("SendWithin to a host whose slot stayed taken sent: %+v", out)
	}
	waiting := make(chan bool, 1)
	go func() {
		_, sent := s.SendWithin(context.Background(), post(slow.URL), time.Minute, false, testNow, time.Minute)
		waiting <- sent
	}()
	release()
	<-held
	if !<-waiting {
		t.Fatal("SendWithin did not send when the slot came free during its wait")
	}
}

// TestSendWithinWaitsForAHostThatKeepsTurningOver: SendWithin gives up once its host has freed no slot for
// hostWait, not after hostWait of waiting: a busy host that frees its slot in time, again and again, is waited for
// as long as it does, so its matches queue for it rather than being handed to the delivery controller.
func TestSendWithinWaitsForAHostThatKeepsTurningOver(t *testing.T) {
	const hostWait = 2 * time.Second
	arrived := make(chan struct{}, 3)
	answer := make(chan struct{})
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-answer:
		case <-r.Context().Done():
		}
	})
	s := newSender(delivery.SenderOptions{MaxConcurrent: 4, MaxPerHost: 1})
	go s.Send(context.Background(), post(srv.URL), time.Minute, false, testNow) // holds the host's one slot
	<-arrived
	start := time.Now()
	sent := make(chan bool, 2)
	for range 2 {
		go func() {
			_, ok := s.SendWithin(context.Background(), post(srv.URL), time.Minute, false, testNow, hostWait)
			sent <- ok
		}()
	}
	// The slot comes free twice, each time 60 % of hostWait after the last: the second waiter waits 120 % of it.
	for i := range 2 {
		time.Sleep(hostWait * 6 / 10)
		answer <- struct{}{}
		select {
		case <-arrived:
		case <-time.After(hostWait):
			t.Fatalf("waiter %d of 2 never reached the host after its slot came free", i+1)
		}
	}
	waited := time.Since(start)
	answer <- struct{}{}
	for range 2 {
		if !<-sent {
			t.Errorf("SendWithin gave up on a host that freed its slot every %s (hostWait %s)", hostWait*6/10, hostWait)
		}
	}
	if waited <= hostWait {
		t.Errorf("the second waiter waited %s, not longer than hostWait %s: this checked nothing", waited, hostWait)
	}
}

// BenchmarkHealthyHostBesideSlowHost measures attempts to a healthy receiver alone, and while a slow receiver
// (answering only when its attempts time out) keeps every one of its own slots busy. Compare the two ns/op in one
// run: per-host slots keep the ratio near 1.
func BenchmarkHealthyHostBesideSlowHost(b *testing.B) {
	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer slow.Close()
	defer close(stop)
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer fast.Close()
	const perHost = 4
	for _, withSlow := range []bool{false, true} {
		name := "alone"
		if withSlow {
			name = "beside-slow"
		}
		b.Run(name, func(b *testing.B) {
			s := newSender(delivery.SenderOptions{MaxConcurrent: 2 * perHost, MaxPerHost: perHost})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			workers := 0
			if withSlow {
				workers = 2 * perHost // twice the slow host's slots: some hold them, the rest wait
			}
			for range workers {
				go func() {
					for ctx.Err() == nil {
						s.Send(ctx, post(slow.URL), 200*time.Millisecond, false, testNow)
					}
					done <- struct{}{}
				}()
			}
			for withSlow && s.InFlight() < perHost {
				time.Sleep(time.Millisecond)
			}
			b.ResetTimer()
			for b.Loop() {
				if out := s.Send(context.Background(), post(fast.URL), 5*time.Second, false, testNow); out.Class != delivery.ClassSucceeded {
					b.Fatalf("healthy host outcome = %+v", out)
				}
			}
			b.StopTimer()
			cancel()
			for range workers {
				<-done
			}
		})
	}
}
