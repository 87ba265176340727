package harness

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/hookpost/hookpost/test/harness/pki"
)

// Received is one request a Receiver got.
type Received struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
	// ClientCN is the common name of the client certificate presented, on a receiver that requires one.
	ClientCN string
}

// Response is what a Receiver answers.
type Response struct {
	Status int
	Header map[string]string
	Body   string
	// Delay holds the answer back, to play a slow endpoint.
	Delay time.Duration
}

// Receiver is a real HTTP(S) webhook receiver on loopback that records every request and answers per path from
// a script: the n-th request to a path gets the n-th scripted response, the last one repeating; 200 by default.
type Receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []Received
	scripts  map[string][]Response
	served   map[string]int
	released chan struct{}
}

// NewReceiver starts a plain HTTP receiver on 127.0.0.1.
func NewReceiver() *Receiver { return newReceiver(false) }

// NewReceiverOn starts a plain HTTP receiver on addr, another loopback address (127.0.0.2 plays an internal
// service the operator's SSRF guard refuses unless allowed).
func NewReceiverOn(addr string) (*Receiver, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	r := &Receiver{scripts: map[string][]Response{}, served: map[string]int{}, released: make(chan struct{})}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	_ = r.Server.Listener.Close()
	r.Server.Listener = l
	r.Server.Start()
	return r, nil
}

// NewTLSReceiver starts an HTTPS receiver on 127.0.0.1 with a self-signed certificate; Client().Transport
// carries the pool that trusts it.
func NewTLSReceiver() *Receiver { return newReceiver(true) }

// NewMTLSReceiver starts an HTTPS receiver on 127.0.0.1 serving server (issued for 127.0.0.1) that requires a
// client certificate signed by a CA in clientCAs, as a receiver demanding mutual TLS does; without one the
// handshake fails and nothing is recorded.
func NewMTLSReceiver(server pki.Issued, clientCAs *x509.CertPool) (*Receiver, error) {
	cert, err := server.TLSCertificate()
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	r := &Receiver{scripts: map[string][]Response{}, served: map[string]int{}, released: make(chan struct{})}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.Server.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs, MinVersion: tls.VersionTLS12}
	r.Server.StartTLS()
	return r, nil
}

func newReceiver(tls bool) *Receiver {
	r := &Receiver{scripts: map[string][]Response{}, served: map[string]int{}, released: make(chan struct{})}
	h := http.HandlerFunc(r.serve)
	if tls {
		r.Server = httptest.NewTLSServer(h)
	} else {
		r.Server = httptest.NewServer(h)
	}
	return r
}

// Script sets the answers for a path.
func (r *Receiver) Script(path string, rs ...Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scripts[path] = rs
}

// Requests returns what was received on a path ("" for every path), in order.
func (r *Receiver) Requests(path string) []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Received
	for _, g := range r.got {
		if path == "" || g.Path == path {
			out = append(out, g)
		}
	}
	return out
}

// Close releases held answers, then stops the server.
func (r *Receiver) Close() {
	close(r.released)
	r.Server.Close()
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 8<<20))
	r.mu.Lock()
	got := Received{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, At: time.Now()}
	if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
		got.ClientCN = req.TLS.PeerCertificates[0].Subject.CommonName
	}
	r.got = append(r.got, got)
	resp := Response{Status: http.StatusOK, Body: `{"received":true}`}
	if s := r.scripts[req.URL.Path]; len(s) > 0 {
		n := r.served[req.URL.Path]
		resp = s[min(n, len(s)-1)]
	}
	r.served[req.URL.Path]++
	r.mu.Unlock()
	if resp.Delay > 0 {
		select {
		case <-time.After(resp.Delay):
		case <-req.Context().Done():
			return
		case <-r.released:
			return
		}
	}
	for k, v := range resp.Header {
		w.Header().Set(k, v)
	}
	if resp.Status == 0 {
		resp.Status = http.StatusOK
	}
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}
