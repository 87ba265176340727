package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
)

// orderedReceiver is a real HTTP receiver for events whose data is {"key": ..., "seq": n}: it answers each
// attempt with fail's status (200 when fail returns 0) and checks, per key, that no attempt of event n arrives
// before event n-1 got its 2xx.
type orderedReceiver struct {
	*httptest.Server
	fail func(key string, seq int) int

	mu sync.Mutex
	// done is, per key, the highest seq delivered with every one before it; attempts lists every attempt as
	// "key/seq/status", in arrival order.
	done       map[string]int
	attempts   []string
	outOfOrder []string
}

func newOrderedReceiver(fail func(key string, seq int) int) *orderedReceiver {
	r := &orderedReceiver{fail: fail, done: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *orderedReceiver) serve(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Data struct {
			Key string `json:"key"`
			Seq int    `json:"seq"`
		} `json:"data"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key, seq := body.Data.Key, body.Data.Seq
	status := r.fail(key, seq)
	if status == 0 {
		status = http.StatusOK
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, fmt.Sprintf("%s/%d/%d", key, seq, status))
	done, started := r.done[key]
	if !started {
		done = -1
	}
	if seq > done+1 {
		r.outOfOrder = append(r.outOfOrder, fmt.Sprintf("%s/%d before %s/%d was delivered", key, seq, key, done+1))
	}
	if status < 300 && seq == done+1 {
		r.done[key] = seq
	}
	w.WriteHeader(status)
}

// delivered returns, per key, how many events arrived in order with a 2xx.
func (r *orderedReceiver) delivered(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.done[key]; ok {
		return d + 1
	}
	return 0
}

func (r *orderedReceiver) attemptsOf(key string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.attempts {
		if strings.HasPrefix(a, key+"/") {
			out = append(out, a)
		}
	}
	return out
}

func (r *orderedReceiver) outOfOrderAttempts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.outOfOrder...)
}

// randomlyFailingReceiver answers 10 % of the attempts with a 503, at random from the seeds.
func randomlyFailingReceiver(seed1, seed2 uint64) *orderedReceiver {
	rnd := rand.New(rand.NewPCG(seed1, seed2))
	var mu sync.Mutex
	return newOrderedReceiver(func(string, int) int {
		mu.Lock()
		defer mu.Unlock()
		if rnd.IntN(10) == 0 {
			return http.StatusServiceUnavailable
		}
		return 0
	})
}

// keyNames returns n ordering keys: k00, k01, ...
func keyNames(n int) []string {
	names := make([]string, n)
	for k := range names {
		names[k] = fmt.Sprintf("k%02d", k)
	}
	return names
}

// waitEveryKeyInOrder waits until rcv got perKey events of every key in names, and fails if any attempt came out
// of its key's order.
func waitEveryKeyInOrder(t *testing.T, rcv *orderedReceiver, names []string, perKey int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, k := range names {
		for rcv.delivered(k) < perKey {
			if time.Now().After(deadline) {
				t.Fatalf("key %s: %d of %d delivered in order after %s", k, rcv.delivered(k), perKey, timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if ooo := rcv.outOfOrderAttempts(); len(ooo) != 0 {
		t.Fatalf("%d attempts out of order, such as %v", len(ooo), ooo[:min(len(ooo), 5)])
	}
}

// keyedRows returns perKey events for each of keys, interleaved: key0/0, key1/0, ..., key0/1, ...
func keyedRows(keys []string, perKey int) []row {
	var rows []row
	for seq := range perKey {
		for _, k := range keys {
			rows = append(rows, row{"order.updated", "", "", fmt.Sprintf(`{"key":%q,"seq":%d}`, k, seq)})
		}
	}
	return rows
}

// deliveryCondition returns the Delivered condition of the delivery of event id to sub, nil while there is none.
func deliveryCondition(t *testing.T, ns, sub, id string) *hookpostv1.WebhookDelivery {
	t.Helper()
	d, ok := getDelivery(t, ns, hookpostv1.DeliveryName(sub, id))
	if !ok {
		return nil
	}
	return d
}

func deliveredReason(d *hookpostv1.WebhookDelivery) (reason, message string) {
	if d == nil {
		return "", ""
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered); c != nil {
		return c.Reason, c.Message
	}
	return "", ""
}

// TestOrderedKeyWaitsForItsFailingHeadWhileOtherKeysFlow: key a's first event fails (503, retried) and holds a's
// later events, which wait (WaitingForPredecessor, naming it) without an attempt, while key b's events are
// delivered; once the receiver takes a's first event, a's events follow in order.
func TestOrderedKeyWaitsForItsFailingHeadWhileOtherKeysFlow(t *testing.T) {
	var holdA atomic.Bool
	holdA.Store(true)
	rcv := newOrderedReceiver(func(key string, seq int) int {
		if key == "a" && seq == 0 && holdA.Load() {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	defer rcv.Close()
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "orders", rcv.URL+"/orders", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.Ordering("data.key", hookpostv1.OrderingSkip), fixtures.Schedule(slices.Repeat([]time.Duration{time.Second}, 16)...))
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour, namespace: ns}, src)
	readySubscription(t, sub)

	ids := insert(t, table, keyedRows([]string{"a", "b"}, 3)...) // a/0 b/0 a/1 b/1 a/2 b/2
	waitFor(t, "key b delivered in order", func() bool { return rcv.delivered("b") == 3 })
	waitFor(t, "a/1 waiting for a/0, named", func() bool {
		reason, msg := deliveredReason(deliveryCondition(t, ns, "orders", ids[2]))
		return reason == hookpostv1.ReasonWaitingForPredecessor && strings.Contains(msg, hookpostv1.DeliveryName("orders", ids[0]))
	})
	if got := rcv.attemptsOf("a"); len(got) == 0 || strings.Join(got, " ") != strings.Repeat("a/0/503 ", len(got)-1)+"a/0/503" {
		t.Fatalf("attempts of key a while its head fails = %v, want only a/0's", got)
	}
	if a1 := deliveryCondition(t, ns, "orders", ids[2]); a1.Status.Attempts != 0 || a1.Status.Phase != hookpostv1.DeliveryPending {
		t.Fatalf("a/1 while it waits: phase %s, %d attempts; want Pending with none spent", a1.Status.Phase, a1.Status.Attempts)
	}

	holdA.Store(false)
	waitFor(t, "key a delivered in order", func() bool { return rcv.delivered("a") == 3 })
	if ooo := rcv.outOfOrderAttempts(); len(ooo) != 0 {
		t.Fatalf("out of order: %v", ooo)
	}
	d := deliveryCondition(t, ns, "orders", ids[2])
	if d.Spec.Ordering == nil || d.Spec.Ordering.Key != "a" || d.Spec.Ordering.Source != postgres.Name || d.Labels[hookpostv1.LabelOrderingKey] != hookpostv1.OrderingKeyHash("orders", "a") {
		t.Fatalf("a/1's ordering = %+v, labels %v", d.Spec.Ordering, d.Labels)
	}
}

// TestOrderedKeyAfterAFailureSkipsOrBlocks: a/0 is rejected for good (400). With onExhausted Skip a's later
// events go on; with Block they wait, saying how to unblock them, until a/0 is replayed and succeeds.
func TestOrderedKeyAfterAFailureSkipsOrBlocks(t *testing.T) {
	var rejectA atomic.Bool
	rejectA.Store(true)
	rcv := newOrderedReceiver(func(key string, seq int) int {
		if key == "a" && seq == 0 && rejectA.Load() {
			return http.StatusBadRequest
		}
		return 0
	})
	defer rcv.Close()
	ns := namespace(t)
	skip := fixtures.Subscription(ns, "skip", rcv.URL+"/skip", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.Filter(nil, []string{"skip"}), fixtures.Ordering("data.key", hookpostv1.OrderingSkip))
	block := fixtures.Subscription(ns, "block", rcv.URL+"/block", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.Filter(nil, []string{"block"}), fixtures.Ordering("data.key", hookpostv1.OrderingBlock))
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour, namespace: ns}, src)
	readySubscription(t, skip)
	readySubscription(t, block)

	skipRows := keyedRows([]string{"a"}, 3)
	for i := range skipRows {
		skipRows[i].collection = "skip"
	}
	ids := insert(t, table, skipRows...)
	waitFor(t, "Skip: a/1 and a/2 delivered after a/0 failed", func() bool {
		d := deliveryCondition(t, ns, "skip", ids[2])
		return d != nil && d.Status.Phase == hookpostv1.DeliverySucceeded
	})
	if d := deliveryCondition(t, ns, "skip", ids[0]); d.Status.Phase != hookpostv1.DeliveryFailed {
		t.Fatalf("a/0 under Skip is %s, want Failed", d.Status.Phase)
	}
	if got := rcv.attemptsOf("a"); strings.Join(got, " ") != "a/0/400 a/1/200 a/2/200" {
		t.Fatalf("Skip: attempts of key a = %v, want a/0 (rejected), then a/1 and a/2", got)
	}
	if ooo := rcv.outOfOrderAttempts(); len(ooo) != 2 || !strings.Contains(ooo[0], "a/1 before a/0") {
		// The receiver counts a/1 as out of order: a/0 never got its 2xx, which Skip allows.
		t.Fatalf("Skip: attempts ahead of the failed a/0 = %v, want a/1 and a/2", ooo)
	}

	// Block, on a fresh key so the receiver's bookkeeping starts over.
	rcv.mu.Lock()
	rcv.done, rcv.outOfOrder = map[string]int{}, nil
	rcv.mu.Unlock()
	blockRows := keyedRows([]string{"a"}, 3)
	for i := range blockRows {
		blockRows[i].collection = "block"
	}
	ids = insert(t, table, blockRows...)
	head := hookpostv1.DeliveryName("block", ids[0])
	waitFor(t, "Block: a/1 waiting for the failed a/0, saying how to unblock it", func() bool {
		reason, msg := deliveredReason(deliveryCondition(t, ns, "block", ids[1]))
		return reason == hookpostv1.ReasonWaitingForPredecessor && strings.Contains(msg, head) && strings.Contains(msg, "onExhausted is Block; replay it")
	})
	if got := rcv.attemptsOf("a"); len(got) != 4 || got[3] != "a/0/400" {
		t.Fatalf("attempts of key a under Block = %v, want a/0's only after Skip's three", got)
	}

	rejectA.Store(false)
	d := deliveryCondition(t, ns, "block", ids[0])
	patch := client.MergeFrom(d.DeepCopy())
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[hookpostv1.AnnotationReplay] = "unblock"
	if err := cp.Client.Patch(context.Background(), d, patch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Block: a's events delivered in order once a/0 succeeded", func() bool { return rcv.delivered("a") == 3 })
	if ooo := rcv.outOfOrderAttempts(); len(ooo) != 0 {
		t.Fatalf("Block: out of order: %v", ooo)
	}
}

// TestOrderedDeliveryKeepsEveryKeysOrderUnderRandomFailures: 1,000 events over 20 keys, interleaved, to a receiver
// that answers 10 % of the attempts with a 503: every key's events arrive in order, and every one arrives. (make
// bench runs the 10,000 events over 100 keys: test/bench, scenario ordered.)
func TestOrderedDeliveryKeepsEveryKeysOrderUnderRandomFailures(t *testing.T) {
	const keys, perKey = 20, 50
	rcv := randomlyFailingReceiver(11, 3)
	defer rcv.Close()
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "orders", rcv.URL+"/orders", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.Ordering("data.key", hookpostv1.OrderingBlock), fixtures.HistoryLimits(10, 10),
		fixtures.Schedule(slices.Repeat([]time.Duration{time.Second}, 18)...))
	src, table := newOutbox(t, postgres.Options{})
	startOperator(t, operatorConfig{flushInterval: time.Hour, namespace: ns}, src)
	readySubscription(t, sub)

	names := keyNames(keys)
	rows := keyedRows(names, perKey)
	for i := 0; i < len(rows); i += 100 {
		insert(t, table, rows[i:min(i+100, len(rows))]...)
	}
	waitEveryKeyInOrder(t, rcv, names, perKey, 3*time.Minute)
	rcv.mu.Lock()
	failed := 0
	for _, a := range rcv.attempts {
		if strings.HasSuffix(a, "/503") {
			failed++
		}
	}
	total := len(rcv.attempts)
	rcv.mu.Unlock()
	t.Logf("%d events over %d keys: %d attempts, %d answered 503, 0 out of order", keys*perKey, keys, total, failed)
	if failed == 0 {
		t.Fatal("the receiver failed no attempt: the test shows nothing")
	}
}

// TestOrderedDeliveryAcrossTwoIngestingReplicas: two replicas claim batches of one outbox, the leader (the only one
// running the delivery controller) sequences every key: 400 events over 10 keys to a receiver failing 10 % of the
// attempts arrive in order, although either replica may acknowledge an event's batch before or after the other.
func TestOrderedDeliveryAcrossTwoIngestingReplicas(t *testing.T) {
	const keys, perKey = 10, 40
	rcv := randomlyFailingReceiver(5, 8)
	defer rcv.Close()
	ns := namespace(t)
	sub := fixtures.Subscription(ns, "orders", rcv.URL+"/orders", fixtures.Events("order.*"), fixtures.InsecureHTTP(),
		fixtures.Ordering("data.key", hookpostv1.OrderingSkip),
		fixtures.Schedule(slices.Repeat([]time.Duration{time.Second}, 18)...))
	leaderSrc, table := newOutbox(t, postgres.Options{})
	otherSrc, _ := newOutbox(t, postgres.Options{Table: table})
	startOperator(t, operatorConfig{flushInterval: time.Hour, namespace: ns}, leaderSrc)
	startOperator(t, operatorConfig{flushInterval: time.Hour, namespace: ns, ingestOnly: true}, otherSrc)
	readySubscription(t, sub)

	names := keyNames(keys)
	rows := keyedRows(names, perKey)
	// Batches of 20 rows, so the two replicas take turns at claiming them.
	for i := 0; i < len(rows); i += 20 {
		insert(t, table, rows[i:min(i+20, len(rows))]...)
	}
	waitEveryKeyInOrder(t, rcv, names, perKey, 2*time.Minute)
}
