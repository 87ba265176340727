package harness

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Received is one request a Receiver got.
type Received struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
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
	r.got = append(r.got, Received{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, At: time.Now()})
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
