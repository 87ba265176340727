package main

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/signing"
)

// receiver is a webhook receiver on loopback that verifies each request's HMAC signature with the secret of its
// path and records when each event id first arrived and how long after it was produced (data.sent_at_ns).
type receiver struct {
	*httptest.Server

	mu     sync.Mutex
	routes map[string]*route
}

// route is what the receiver knows and records for one path.
type route struct {
	key      []byte                  // HMAC key
	first    map[string]firstReceipt // event id -> its first receipt
	requests int
	badSig   int
	badBody  int
	last     time.Time
	// keys, when set, gives event seq the key seq % keys: outOfOrder counts the events first received after a
	// later event of their key, newest the latest seq received per key. failPercent % of the requests are
	// answered 503 at random, failed counts them.
	keys, failPercent int
	newest            map[int]int
	outOfOrder        int
	failed            int
}

func newReceiver() *receiver {
	r := &receiver{routes: map[string]*route{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// expect registers a path, the secret its requests are signed with and how many distinct events it will get.
func (r *receiver) expect(path, secret string, want int) (*route, error) {
	key, err := signing.Key(signing.SchemeHMACSHA256Hex, secret)
	if err != nil {
		return nil, err
	}
	rt := &route{key: key, first: make(map[string]firstReceipt, want)}
	r.mu.Lock()
	r.routes[path] = rt
	r.mu.Unlock()
	return rt, nil
}

// keyed makes rt check the order of each key's events (keys > 0) and fail failPercent % of its requests.
func (r *receiver) keyed(rt *route, keys, failPercent int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt.keys, rt.failPercent, rt.newest = keys, failPercent, map[int]int{}
}

// envelopeBody is the part of an Envelope body the receiver reads.
type envelopeBody struct {
	Data struct {
		SentAtNs int64 `json:"sent_at_ns"`
		Seq      int   `json:"seq"`
	} `json:"data"`
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	rt := r.routes[req.URL.Path]
	r.mu.Unlock()
	if err != nil || rt == nil {
		http.Error(w, "unknown path", http.StatusNotFound)
		return
	}
	sigErr := signing.VerifyHMACHex(rt.key, body, req.Header.Get(signing.DefaultHMACHeader))
	var env envelopeBody
	bodyErr := json.Unmarshal(body, &env)
	id := req.Header.Get(delivery.HeaderEventID)

	r.mu.Lock()
	rt.requests++
	fail := rt.failPercent > 0 && rand.IntN(100) < rt.failPercent
	switch {
	case sigErr != nil:
		rt.badSig++
	case bodyErr != nil || env.Data.SentAtNs == 0 || id == "":
		rt.badBody++
	case fail:
		rt.failed++
	default:
		if _, seen := rt.first[id]; !seen {
			sent := time.Unix(0, env.Data.SentAtNs)
			rt.first[id] = firstReceipt{sent: sent, latency: now.Sub(sent)}
			rt.last = now
			if rt.keys > 0 {
				key := env.Data.Seq % rt.keys
				if newest, ok := rt.newest[key]; ok && newest > env.Data.Seq {
					rt.outOfOrder++
				} else {
					rt.newest[key] = env.Data.Seq
				}
			}
		}
	}
	r.mu.Unlock()
	if sigErr != nil {
		// The operator retries a 401 only with retryOn4xx; the count above is what the report shows.
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if fail {
		http.Error(w, "failing at random", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"received":true}`)
}

// receipts are what the receiver recorded on a set of routes: a run's, one route per subscription.
type receipts struct {
	distinct, requests, badSig, badBody int
	// outOfOrder and failed sum the routes' counts (keyed runs).
	outOfOrder, failed int
	// last is when the last distinct (route, event) pair arrived.
	last time.Time
	// firsts are each distinct pair's first receipt.
	firsts []firstReceipt
}

// firstReceipt is when an event was produced and how long after that it first arrived.
type firstReceipt struct {
	sent    time.Time
	latency time.Duration
}

func (r receipts) latencies() []time.Duration {
	out := make([]time.Duration, len(r.firsts))
	for i, f := range r.firsts {
		out[i] = f.latency
	}
	return out
}

// slowAtOnset counts the pairs that took longer than over, and how many of them were produced within onset of the
// run's first production: a cost paid when a fault begins (until a hang is detected or a circuit opens) rather
// than all along.
func (r receipts) slowAtOnset(over, onset time.Duration) (slow, atOnset int) {
	var start time.Time
	for _, f := range r.firsts {
		if start.IsZero() || f.sent.Before(start) {
			start = f.sent
		}
	}
	for _, f := range r.firsts {
		if f.latency > over {
			slow++
			if f.sent.Sub(start) < onset {
				atOnset++
			}
		}
	}
	return slow, atOnset
}

// receipts returns the routes' counters under the lock.
func (r *receiver) receipts(rts []*route) receipts {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out receipts
	for _, rt := range rts {
		out.distinct += len(rt.first)
		out.requests += rt.requests
		out.badSig += rt.badSig
		out.badBody += rt.badBody
		out.outOfOrder += rt.outOfOrder
		out.failed += rt.failed
		if rt.last.After(out.last) {
			out.last = rt.last
		}
		for _, f := range rt.first {
			out.firsts = append(out.firsts, f)
		}
	}
	return out
}

// distinct counts the distinct (route, event) pairs received so far, without copying latencies.
func (r *receiver) distinct(rts []*route) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rt := range rts {
		n += len(rt.first)
	}
	return n
}
