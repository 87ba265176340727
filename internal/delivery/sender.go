package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookpost/hookpost/internal/backoff"
	"github.com/hookpost/hookpost/internal/netguard"
)

const (
	// MaxResponseBody is how much of a receiver's answer is kept for the record.
	MaxResponseBody = 1 << 10
	// drainLimit is how much more of a response is read and discarded so the
	// connection can be reused; past it, closing is cheaper than reading.
	drainLimit = 64 << 10
	// DefaultTimeout applies when an attempt has none: doc 002's receivers
	// expect an answer within 10 seconds, and an attempt without a deadline
	// would hold its slots forever.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxConcurrent and DefaultMaxPerHost apply when SenderOptions
	// leaves the bounds at zero.
	DefaultMaxConcurrent = 64
	DefaultMaxPerHost    = 8
	// maxLocationInMessage keeps a hostile Location header from bloating status.
	maxLocationInMessage = 256
	// MaxResponseHeaderBytes bounds a receiver's response headers: a receiver answering with megabytes of headers
	// to every attempt in flight would otherwise exhaust the operator's memory. Webhook answers need a few
	// hundred bytes.
	MaxResponseHeaderBytes = 64 << 10
)

// SenderOptions configures a Sender.
type SenderOptions struct {
	// Guard refuses forbidden destinations. nil means no guard, for tests of
	// the sender alone; the operator always sets it.
	Guard *netguard.Guard
	// MaxConcurrent bounds attempts in flight across all hosts (default 64).
	MaxConcurrent int
	// MaxPerHost bounds attempts in flight per destination host (default 8),
	// so one slow endpoint cannot starve the others.
	MaxPerHost int
	// MaxPerNamespace bounds attempts in flight per subscription namespace (default half of MaxConcurrent), so
	// one tenant's hanging endpoints, however many, leave the other half of the global slots to everyone else.
	MaxPerNamespace int
	// TLSConfig verifies receivers; nil means the system roots. Tests pass an
	// httptest server's pool.
	TLSConfig *tls.Config
}

// Sender makes attempts. It shares one Transport so connections to a receiver
// are reused across deliveries; attempts of namespaces allowed extra ranges, and
// of subscriptions with their own TLS material (ClientTLS), get a Transport per
// set of ranges and material, so a connection dialed under one namespace's
// allowance, or presenting one tenant's client certificate, never carries
// another's request. A Sender is safe for concurrent use.
type Sender struct {
	client     *http.Client
	hosts      *slotLimiter
	namespaces *slotLimiter
	global     chan struct{}
	// rates holds the subscriptions' rate limits: the first attempt from ingest and the delivery controller share
	// the Sender, so they share each subscription's bucket too.
	rates    *rateLimiter
	inFlight atomic.Int64

	guard     *netguard.Guard
	tlsConfig *tls.Config
	maxIdle   int
	perHost   int
	// clients holds a client per Reach.key() and ClientTLS identity, made on first use and dropped once unused for
	// unusedClientTTL: a rotated certificate leaves its old pool behind, and tenants come and go.
	mu      sync.Mutex
	clients map[string]*pooledClient
	// now reads the wall clock for dropping unused clients; tests replace it.
	now func() time.Time
}

// pooledClient is a client of Sender.clients and when it was last used.
type pooledClient struct {
	client   *http.Client
	lastUsed time.Time
}

// unusedClientTTL is how long a client of Sender.clients is kept without an attempt: longer than the
// IdleConnTimeout of its connections, so dropping it loses no warm connection.
const unusedClientTTL = 10 * time.Minute

// NewSender returns a Sender configured by o.
func NewSender(o SenderOptions) *Sender {
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.MaxPerHost <= 0 {
		o.MaxPerHost = DefaultMaxPerHost
	}
	if o.MaxPerNamespace <= 0 {
		o.MaxPerNamespace = max(o.MaxConcurrent/2, 1)
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSConfig != nil {
		tlsConfig = o.TLSConfig.Clone()
		if tlsConfig.MinVersion == 0 {
			tlsConfig.MinVersion = tls.VersionTLS12
		}
	}
	s := &Sender{
		hosts:      newSlotLimiter(o.MaxPerHost),
		namespaces: newSlotLimiter(o.MaxPerNamespace),
		rates:      newRateLimiter(),
		global:     make(chan struct{}, o.MaxConcurrent),
		guard:      o.Guard,
		tlsConfig:  tlsConfig,
		maxIdle:    o.MaxConcurrent,
		perHost:    o.MaxPerHost,
		clients:    map[string]*pooledClient{},
		now:        time.Now,
	}
	s.client = s.newClient(o.Guard, tlsConfig)
	return s
}

// newClient returns a client dialing through guard (none when nil) with tlsConfig.
func (s *Sender) newClient(guard *netguard.Guard, tlsConfig *tls.Config) *http.Client {
	dial := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	if guard != nil {
		dial = guard.DialContext
	}
	transport := &http.Transport{
		// No proxy: the guard checks the address the socket connects to, and
		// with a proxy that would be the proxy, which then reaches any
		// destination on our behalf.
		Proxy:             nil,
		DialContext:       dial,
		TLSClientConfig:   tlsConfig,
		ForceAttemptHTTP2: true,
		// Attempts per host never exceed MaxPerHost, so that many idle
		// connections is exactly what keeps a busy receiver's connections warm.
		MaxIdleConns:        s.maxIdle,
		MaxIdleConnsPerHost: s.perHost,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		// Send exactly the headers the Request lists (inspect shows them), and
		// record the receiver's answer as it sent it.
		DisableCompression:     true,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
	}
	return &http.Client{
		Transport: transport,
		// Redirects are never followed: the signed payload goes to the
		// configured URL or nowhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// clientFor returns the client for r's reach and TLS material: the shared one unless r's namespace is allowed extra
// ranges or its subscription has TLS material of its own. The material is parsed only when its client is made;
// a request with the same bytes finds the client by them (ClientTLS.poolKey).
func (s *Sender) clientFor(r Request) (*http.Client, error) {
	reach := ""
	if s.guard != nil {
		reach = r.Reach.key()
	}
	if reach == "" && r.TLS.IsZero() {
		return s.client, nil
	}
	key := r.TLS.poolKey(reach)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	c := s.clients[key]
	if c == nil {
		tlsConfig, err := r.TLS.Config(s.tlsConfig)
		if err != nil {
			return nil, err
		}
		guard := s.guard
		if reach != "" {
			guard = s.guard.Allowing(r.Reach.AllowCIDRs)
		}
		s.dropUnused(now)
		c = &pooledClient{client: s.newClient(guard, tlsConfig)}
		s.clients[key] = c
	}
	c.lastUsed = now
	return c.client, nil
}

// dropUnused forgets the clients unused for unusedClientTTL and closes their idle connections; s.mu is held. It
// runs when a client is made, so the map is bounded by the material and ranges in use within the TTL.
func (s *Sender) dropUnused(now time.Time) {
	for k, c := range s.clients {
		if now.Sub(c.lastUsed) > unusedClientTTL {
			c.client.CloseIdleConnections()
			delete(s.clients, k)
		}
	}
}

// Stuck reports whether every slot of rawURL's host, or of namespace, has been taken for longer than after with
// none freed meanwhile: the endpoints behind them hang (no attempt came back for that long), unlike a busy host,
// whose slots keep turning over.
func (s *Sender) Stuck(rawURL, namespace string, after time.Duration) bool {
	if s.namespaces.fullFor(namespace) > after {
		return true
	}
	u, err := url.Parse(rawURL)
	return err == nil && s.hosts.fullFor(hostKey(u)) > after
}

// HostFull reports whether every slot for rawURL's host is taken, so a caller can skip encoding and signing a
// request that TrySend would refuse. It is a hint that may be stale at once; TrySend stays the authority.
func (s *Sender) HostFull(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	return s.hosts.full(hostKey(u))
}

// TakeRate admits one attempt to t at now if t's rate limit allows it, and books nothing when it does not: for a
// caller that hands a refused attempt to someone else (ingest hands it to the delivery controller).
func (s *Sender) TakeRate(t Target, now time.Time) bool {
	return s.rates.take(t.CircuitKey(), t.Rate, now)
}

// ReserveRate books one attempt to t and returns when it may start (now, or later when t's rate limit is used up):
// for a caller that comes back at that time holding its booking (the delivery controller), so waiters are woken
// one at a time at the limit's pace.
func (s *Sender) ReserveRate(t Target, now time.Time) time.Time {
	return s.rates.reserve(t.CircuitKey(), t.Rate, now)
}

// InFlight reports attempts in flight (holding their slots), for a metric.
func (s *Sender) InFlight() int {
	return int(s.inFlight.Load())
}

// Send makes the attempt r with the given timeout (DefaultTimeout when not
// positive) and classifies what happened. It first waits for a slot for r's
// host, then its namespace, then a global slot, respecting ctx. now is the time the attempt
// is made, used to read an HTTP-date Retry-After.
func (s *Sender) Send(ctx context.Context, r Request, timeout time.Duration, retryOn4xx bool, now time.Time) Outcome {
	out, _ := s.send(ctx, r, timeout, retryOn4xx, now, waitForever)
	return out
}

// TrySend is Send without waiting for the destination host or namespace: when every slot for r's host (or its
// namespace) is taken it returns sent=false at once. A caller with a bounded pool of workers (the delivery controller) uses it to release the
// worker and come back later, rather than parking workers behind one slow endpoint.
func (s *Sender) TrySend(ctx context.Context, r Request, timeout time.Duration, retryOn4xx bool, now time.Time) (out Outcome, sent bool) {
	return s.send(ctx, r, timeout, retryOn4xx, now, 0)
}

// SendWithin is Send waiting for a slot for r's host and namespace while they keep turning over; sent is false once
// none has come free for hostWait. The first attempt from ingest uses it: a busy healthy receiver frees a slot every
// few milliseconds, so its matches queue for it, while a hanging one's are handed to the delivery controller
// instead of holding ingest up.
func (s *Sender) SendWithin(ctx context.Context, r Request, timeout time.Duration, retryOn4xx bool, now time.Time, hostWait time.Duration) (out Outcome, sent bool) {
	return s.send(ctx, r, timeout, retryOn4xx, now, max(hostWait, 0))
}

// waitForever makes send wait for a host slot as long as ctx allows.
const waitForever = time.Duration(-1)

// send makes the attempt. hostWait bounds the wait for a slot for r's host with none coming free (see take):
// negative waits as long as ctx allows, zero does not wait.
func (s *Sender) send(ctx context.Context, r Request, timeout time.Duration, retryOn4xx bool, now time.Time, hostWait time.Duration) (Outcome, bool) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	u, err := parseDestination(r.URL)
	if err != nil {
		return Outcome{Error: err.Error(), Class: Classify(0, err, retryOn4xx)}, true
	}

	release, err := s.slots(ctx, hostKey(u), r.Namespace, hostWait)
	if err != nil {
		return waitCanceled(err), true
	}
	if release == nil {
		return Outcome{}, false
	}
	defer release()
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)

	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(actx, method, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		return Outcome{Error: err.Error(), Class: Classify(0, err, retryOn4xx)}, true
	}
	req.Header = r.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}

	// The address the answer came from decides whether its body may be kept (see Reach).
	var remote netip.Addr
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if ap, err := netip.ParseAddrPort(info.Conn.RemoteAddr().String()); err == nil {
				remote = ap.Addr()
			}
		},
	}))

	// Duration is a measurement of the wall clock, not a policy decision, so
	// it uses the real clock rather than now.
	start := time.Now()
	client, err := s.clientFor(r)
	if err != nil {
		return Outcome{Error: "TLS: " + err.Error() + "; fix the Secret or ConfigMap named in spec.tls", Class: Classify(0, err, retryOn4xx)}, true
	}
	resp, err := client.Do(req)
	if err != nil {
		msg := errorMessage(err, ctx, timeout)
		var refused *netguard.RefusedError
		if errors.As(err, &refused) && r.Reach.Ignored != "" {
			msg += " (" + r.Reach.Ignored + ")"
		}
		return Outcome{
			Duration: time.Since(start),
			Error:    msg,
			Class:    Classify(0, err, retryOn4xx),
		}, true
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	_ = resp.Body.Close()
	if len(body) > 0 && s.guard != nil && remote.IsValid() && netguard.Internal(remote) && !r.Reach.ShowInternalResponses {
		body = []byte(withheldBody)
	}

	out := Outcome{
		StatusCode:   resp.StatusCode,
		Duration:     time.Since(start),
		ResponseBody: body,
		Class:        Classify(resp.StatusCode, nil, retryOn4xx),
	}
	if resp.StatusCode >= 400 && resp.StatusCode <= 599 && out.Class == ClassRetry {
		// Any error answer that is retried may say when to come back (RFC 9110 allows Retry-After on any
		// response, and receivers send it on 500s and, with retryOn4xx, on 4xx too). Reported as the receiver
		// sent it: the retry policy (backoff.Next) is the one place that caps it.
		out.RetryAfter = backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	out.Error = statusMessage(resp)
	return out, true
}

// slots takes the three slots an attempt holds: its host's, its namespace's, then a global one. The host and
// namespace slots are waited for as hostWait says (see send), the global one as long as ctx allows: a request
// waiting for its busy host or namespace must not sit on a global slot another could use, and since no namespace
// may hold more than MaxPerNamespace, the global slots always turn over for the others. It returns nil and no
// error when a wait ran out, and an error when ctx ended first.
func (s *Sender) slots(ctx context.Context, host, namespace string, hostWait time.Duration) (release func(), err error) {
	releaseHost, err := take(ctx, s.hosts, host, hostWait)
	if releaseHost == nil {
		return nil, err
	}
	releaseNamespace := func() {}
	if namespace != "" { // a request of no subscription (a test of the sender alone) is bounded by host only
		if releaseNamespace, err = take(ctx, s.namespaces, namespace, hostWait); releaseNamespace == nil {
			releaseHost()
			return nil, err
		}
	}
	select {
	case s.global <- struct{}{}:
		return func() { <-s.global; releaseNamespace(); releaseHost() }, nil
	case <-ctx.Done():
		releaseNamespace()
		releaseHost()
		return nil, ctx.Err()
	}
}

// take takes a slot for key from l: without waiting when hostWait is 0, as long as ctx allows when negative, and
// otherwise for as long as key's slots keep turning over: it gives up (nil, no error) only once none has come free
// for hostWait. A busy healthy host frees a slot every few milliseconds, so its waiters queue rather than being
// handed elsewhere however many there are (what bounds them is the batches in flight); a hanging one frees none.
func take(ctx context.Context, l *slotLimiter, key string, hostWait time.Duration) (func(), error) {
	switch {
	case hostWait < 0:
		return l.acquire(ctx, key)
	case hostWait == 0:
		return l.tryAcquire(key), nil
	}
	for {
		if release := l.tryAcquire(key); release != nil {
			return release, nil
		}
		left := hostWait - l.fullFor(key)
		if left <= 0 {
			// No slot came free for as long as we would wait: its attempts hang; do not wait behind them.
			return nil, nil
		}
		wctx, cancel := context.WithTimeout(ctx, left)
		release, err := l.acquire(wctx, key)
		cancel()
		if err == nil {
			return release, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// parseDestination accepts only absolute http and https URLs: anything else
// (file:, a relative path) is a broken subscription, not a transient failure.
func parseDestination(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, which may hold credentials; keep the reason only.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, fmt.Errorf("%w: unparsable URL: %w", ErrInvalidRequest, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: URL scheme %q is not http or https", ErrInvalidRequest, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: URL has no host", ErrInvalidRequest)
	}
	return u, nil
}

// hostKey names the destination a per-host slot belongs to: host and port, so
// https://a and http://a:8080 are limited separately, as they are separate servers.
func hostKey(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func waitCanceled(err error) Outcome {
	return Outcome{Error: "attempt canceled while waiting for a free slot: " + err.Error(), Class: ClassRetry}
}

// statusMessage says what a non-2xx answer means for the delivery.
func statusMessage(resp *http.Response) string {
	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		return ""
	case code >= 300 && code <= 399:
		loc := resp.Header.Get("Location")
		if loc == "" {
			return fmt.Sprintf("redirect %d without a Location not followed", code)
		}
		if len(loc) > maxLocationInMessage {
			loc = loc[:maxLocationInMessage] + "..."
		}
		return fmt.Sprintf("redirect %d to %s not followed", code, loc)
	case code == http.StatusGone:
		return "HTTP 410 Gone: the receiver says this endpoint no longer exists; not retrying"
	default:
		if text := http.StatusText(code); text != "" {
			return fmt.Sprintf("HTTP %d %s", code, text)
		}
		return fmt.Sprintf("HTTP %d", code)
	}
}
