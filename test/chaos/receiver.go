package main

import (
	"encoding/binary"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
)

// fault is how the receiver answers one request.
type fault int

const (
	answerOK      fault = iota // 2xx: the event is delivered
	answerReset                // the connection is hijacked and closed with a TCP reset, no answer
	answerTimeout              // no answer until past the subscription's timeout, then a 504 nobody reads
	answer5xx                  // 500, 502 or 503 with a short text body
	answerGarbage              // 500 with bytes that are no valid JSON, text or UTF-8
	faultKinds
)

var faultNames = [faultKinds]string{"2xx", "reset", "timeout", "5xx", "garbage 5xx"}

// faultWeights weighs the failures: timeouts hold an attempt slot for the whole subscription timeout, so they
// are the rarest, or a run would spend its time waiting on them.
var faultWeights = [faultKinds]int{answerReset: 3, answerTimeout: 1, answer5xx: 3, answerGarbage: 3}

// failuresByBucket gives an event's count of failed answers before its first 2xx by hash bucket: half the events
// succeed at once, three in ten fail once, two in ten twice. Every schedule retries more often than that, so
// every event succeeds eventually.
var failuresByBucket = [10]int{0, 0, 0, 0, 0, 1, 1, 1, 2, 2}

// plan is the receiver's deterministic choice for an event: a function of the seed and the event id alone, so
// a run can be repeated with -seed, and the n-th request for an event gets the same answer whatever operator
// process sends it.
func plan(seed int64, eventID string, n int) fault {
	h := fnv.New64a()
	_ = binary.Write(h, binary.LittleEndian, seed)
	_, _ = io.WriteString(h, eventID)
	sum := h.Sum64()
	if n >= failuresByBucket[sum%10] {
		return answerOK
	}
	total := 0
	for _, w := range faultWeights {
		total += w
	}
	pick := int((sum/10 + uint64(n)*7919) % uint64(total))
	for f := answerReset; f < faultKinds; f++ {
		if pick < faultWeights[f] {
			return f
		}
		pick -= faultWeights[f]
	}
	return answer5xx
}

// receiver is the webhook receiver of the run, on loopback. It counts, per event id, the requests and the 2xx it
// answered; an event's first 2xx is when it was delivered.
type receiver struct {
	*httptest.Server
	seed int64
	// hang is how long a timeout answer holds the request: past the subscription's timeout.
	hang     time.Duration
	released chan struct{}

	mu        sync.Mutex
	requests  map[string]int // event id -> requests received
	successes map[string]int // event id -> 2xx answered
	answered  [faultKinds]int
	lastFirst time.Time // when an event got its first 2xx, the latest such
	noID      int
}

func newReceiver(seed int64, hang time.Duration) *receiver {
	r := &receiver{seed: seed, hang: hang, released: make(chan struct{}),
		requests: map[string]int{}, successes: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// Close releases hanging answers, then stops the server.
func (r *receiver) Close() {
	close(r.released)
	r.Server.Close()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	id := req.Header.Get(delivery.HeaderEventID)
	r.mu.Lock()
	if id == "" {
		r.noID++
		r.mu.Unlock()
		http.Error(w, "no X-Event-Id", http.StatusBadRequest)
		return
	}
	f := plan(r.seed, id, r.requests[id])
	r.requests[id]++
	r.answered[f]++
	if f == answerOK {
		if r.successes[id] == 0 {
			r.lastFirst = time.Now()
		}
		r.successes[id]++
	}
	r.mu.Unlock()

	switch f {
	case answerOK:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"received":true}`)
	case answerReset:
		reset(w)
	case answerTimeout:
		select {
		case <-time.After(r.hang):
		case <-req.Context().Done():
			return
		case <-r.released:
		}
		w.WriteHeader(http.StatusGatewayTimeout)
	case answer5xx:
		codes := []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}
		code := codes[len(id)%len(codes)]
		http.Error(w, http.StatusText(code), code)
	case answerGarbage:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("{\"error\": \x00\xff\xfe<html>\x1b[31m\xc3\x28 unterminated"))
	}
}

// reset closes the request's connection with a TCP RST (linger 0) instead of an answer.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("chaos receiver: the response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// receipts is what the receiver counted for the published events.
type receipts struct {
	delivered  int // published events with at least one 2xx
	lost       []string
	dupEvents  int // published events with more than one 2xx
	dupPOSTs   int // 2xx beyond the first, summed
	unexpected int // event ids that were never published
	requests   int
	answered   [faultKinds]int
	lastFirst  time.Time
}

func (r *receiver) receipts(published []string) receipts {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := receipts{answered: r.answered, lastFirst: r.lastFirst}
	known := make(map[string]bool, len(published))
	for _, id := range published {
		known[id] = true
		switch n := r.successes[id]; {
		case n == 0:
			out.lost = append(out.lost, id)
		default:
			out.delivered++
			if n > 1 {
				out.dupEvents++
				out.dupPOSTs += n - 1
			}
		}
	}
	for id, n := range r.requests {
		out.requests += n
		if !known[id] {
			out.unexpected++
		}
	}
	out.requests += r.noID
	return out
}

// deliveredCount counts the published events with a 2xx, cheaply enough to poll.
func (r *receiver) deliveredCount(published []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range published {
		if r.successes[id] > 0 {
			n++
		}
	}
	return n
}
