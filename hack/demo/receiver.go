package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/signing"
)

// standardTolerance is how far webhook-timestamp may be from now, as the Standard Webhooks specification suggests.
const standardTolerance = 5 * time.Minute

// endpoint is one path of the receiver: whose it is, how it verifies, and how many requests it fails.
type endpoint struct {
	subscription string
	format       hookpostv1.PayloadFormat
	scheme       hookpostv1.SigningScheme
	header       string
	secret       string // empty until read from the subscription's Secret
	failFirst    int
}

// accepted is one event the receiver verified and processed.
type accepted struct {
	subscription, eventType, eventID string
	attempt                          string
}

// receiver is the sample webhook receiver product doc 000 describes: verify the signature, answer 401 when it is
// wrong, skip an X-Event-Id already processed, answer 200 fast. It prints each event it accepts.
type receiver struct {
	say func(format string, args ...any)

	mu        sync.Mutex
	endpoints map[string]*endpoint // by path
	requests  map[string]int       // per path
	seen      map[string]bool      // path + "\x00" + X-Event-Id: de-duplication is per endpoint
	accepted  []accepted
	rejected  int

	server   *http.Server
	listener net.Listener
}

func startReceiver(say func(string, ...any)) (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	r := &receiver{say: say, endpoints: map[string]*endpoint{}, requests: map[string]int{}, seen: map[string]bool{}, listener: l}
	r.server = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.server.Serve(l) }()
	return r, nil
}

// URL is the receiver's base URL.
func (r *receiver) URL() string { return "http://" + r.listener.Addr().String() }

// Close stops the server.
func (r *receiver) Close() error { return r.server.Close() }

func (r *receiver) addEndpoint(path string, e *endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.scheme == "" {
		e.scheme = hookpostv1.SigningSchemeHMACSHA256Hex
	}
	if e.header == "" {
		e.header = signing.DefaultHMACHeader
	}
	r.endpoints[path] = e
}

func (r *receiver) setSecret(path, secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endpoints[path].secret = secret
}

// Accepted returns the events accepted so far.
func (r *receiver) Accepted() []accepted {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]accepted(nil), r.accepted...)
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil || req.Method != http.MethodPost {
		http.Error(w, "send a POST with a JSON body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.endpoints[req.URL.Path]
	if !ok {
		http.NotFound(w, req)
		return
	}
	eventID := req.Header.Get("X-Event-Id")
	attempt := req.Header.Get("X-Hookpost-Attempt")
	ev := summarize(e.format, body)

	// 1. Verify the signature over the exact bytes received. Hookpost sends canonical JSON, so these are also
	// the bytes JSON.stringify(req.body) produces in the docs' Express receivers.
	if err := e.verify(req.Header, body); err != nil {
		r.rejected++
		r.say("  ✗ %-17s %-17s rejected: %v", e.subscription, ev.eventType, err)
		writeJSON(w, http.StatusUnauthorized, `{"error":"Invalid signature"}`)
		return
	}

	// The flaky endpoint plays an outage after verifying, so every attempt is known to be signed correctly.
	r.requests[req.URL.Path]++
	if n := r.requests[req.URL.Path]; n <= e.failFirst {
		r.say("  ✗ %-17s %-17s answered 503 (simulated outage, attempt %s)", e.subscription, ev.eventType, attempt)
		writeJSON(w, http.StatusServiceUnavailable, `{"error":"temporarily unavailable"}`)
		return
	}

	// 2. De-duplicate on X-Event-Id.
	key := req.URL.Path + "\x00" + eventID
	if r.seen[key] {
		r.say("  = %-17s %-17s duplicate of event %s, ignored", e.subscription, ev.eventType, shortID(eventID))
		writeJSON(w, http.StatusOK, `{"received":true,"duplicate":true}`)
		return
	}
	r.seen[key] = true

	// 3. Respond, and "process" the event: print it.
	r.accepted = append(r.accepted, accepted{subscription: e.subscription, eventType: ev.eventType, eventID: eventID, attempt: attempt})
	note := ""
	if attempt != "" && attempt != "1" {
		note = "  (attempt " + attempt + ")"
	}
	if req.Header.Get("X-Hookpost-Test") == "true" {
		note += "  (test event)"
	}
	r.say("  ✓ %-17s %-17s id %s  %s  %s%s", e.subscription, ev.eventType, shortID(eventID), ev.scope, ev.data, note)
	writeJSON(w, http.StatusOK, `{"received":true}`)
}

func (e *endpoint) verify(h http.Header, body []byte) error {
	if e.secret == "" {
		return fmt.Errorf("no secret known for %s yet", e.subscription)
	}
	if e.scheme == hookpostv1.SigningSchemeStandardWebhooks {
		if err := signing.VerifyStandard(e.secret, h, body, time.Now(), standardTolerance); err != nil {
			return fmt.Errorf("invalid Standard Webhooks signature: %w", err)
		}
		return nil
	}
	if err := signing.VerifyHMACHex([]byte(e.secret), body, h.Get(e.header)); err != nil {
		return fmt.Errorf("invalid %s: %w", e.header, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// eventSummary is what the receiver prints about a body.
type eventSummary struct {
	eventType string
	scope     string // "tenant 123" or "collection posts"
	data      string
}

// summarize reads the event type, its tenant or collection, and the first fields of its data from a body.
func summarize(format hookpostv1.PayloadFormat, body []byte) eventSummary {
	var b struct {
		Event      string          `json:"event"`
		TenantID   json.RawMessage `json:"tenant_id"`
		Collection string          `json:"collection"`
		Data       json.RawMessage `json:"data"`
		Payload    json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return eventSummary{eventType: "?", data: "unreadable body: " + err.Error()}
	}
	s := eventSummary{eventType: b.Event}
	if format == hookpostv1.PayloadFormatCollection {
		s.scope = "collection " + b.Collection
		s.data = summarizeObject(b.Payload)
	} else {
		s.scope = "tenant " + strings.Trim(string(b.TenantID), `"`)
		s.data = summarizeObject(b.Data)
	}
	return s
}

// summarizeObject prints the first members of a JSON object as key=value, in the order they were sent.
func summarizeObject(raw json.RawMessage) string {
	const maxLen = 72
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return string(raw)
	}
	var parts []string
	length := 0
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		part := fmt.Sprintf("%v=%s", k, v)
		if length+len(part) > maxLen {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, part)
		length += len(part) + 1
	}
	return strings.Join(parts, " ")
}

// shortID keeps event ids readable in a line; `kubectl get whdel -o wide` shows them in full.
func shortID(id string) string {
	if len(id) > 13 {
		return id[:12] + "…"
	}
	return id
}
