package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// Bounds of the waits. Generous: the machine is small and shared, and a crash costs a restart plus, for NATS,
// the consumer's 30s AckWait before unacknowledged messages come back.
const (
	readyTimeout     = 90 * time.Second
	quiescentTimeout = 5 * time.Minute
	pollInterval     = 500 * time.Millisecond
)

// baseOperatorArgs are passed to every operator: the receivers listen on loopback, which the SSRF guard refuses
// unless allowed.
var baseOperatorArgs = []string{"--allow-cidr=127.0.0.1/32"}

// testbed is one test's world: a namespace of its own, a receiver, the subscriptions and the operators it started.
type testbed struct {
	t      *testing.T
	ctx    context.Context
	c      client.Client
	ns     string
	dir    string
	recv   *harness.Receiver
	routes []route
}

// route is a subscription and the events it must receive.
type route struct {
	name  string
	path  string // the receiver path its URL points at
	match func(producedEvent) bool
}

// producedEvent is what a test knows of an event it produced.
type producedEvent struct {
	ID, Type, Tenant string
}

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	tb := &testbed{t: t, ctx: ctx, c: suite.cp.Client, ns: namespaceFor(t), dir: t.TempDir()}
	// The operator runs with tenant isolation on, its default: the namespace is granted every tenant, as a cluster
	// admin does for a namespace that may see all of them.
	if err := harness.CreateNamespaceForAllTenants(ctx, tb.c, tb.ns); err != nil {
		t.Fatal(err)
	}
	tb.recv = harness.NewReceiver()
	t.Cleanup(tb.recv.Close)
	// The control plane has no garbage collector: delete what this test made, so a later test's operator neither
	// matches events against these subscriptions nor caches these deliveries. Registered first, it runs after the
	// operators are stopped.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = tb.c.DeleteAllOf(ctx, &hookpostv1.WebhookSubscription{}, client.InNamespace(tb.ns))
		_ = tb.c.DeleteAllOf(ctx, &hookpostv1.WebhookDelivery{}, client.InNamespace(tb.ns))
	})
	return tb
}

var notDNSLabel = regexp.MustCompile(`[^a-z0-9]+`)

func namespaceFor(t *testing.T) string {
	name := strings.Trim(notDNSLabel.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return name + "-" + hex.EncodeToString(b)
}

// subscribe creates a subscription to the receiver at /<name> that must receive the events match accepts. History
// limits are raised so that no delivery is pruned before it is counted, and retries are quick.
func (tb *testbed) subscribe(name string, match func(producedEvent) bool, opts ...fixtures.SubscriptionOption) {
	tb.t.Helper()
	path := "/" + name
	opts = append([]fixtures.SubscriptionOption{
		fixtures.InsecureHTTP(),
		fixtures.HistoryLimits(100000, 100000),
		fixtures.Schedule(time.Second, 2*time.Second, 5*time.Second, 10*time.Second, 30*time.Second),
	}, opts...)
	sub := fixtures.Subscription(tb.ns, name, tb.recv.URL+path, opts...)
	if err := tb.c.Create(tb.ctx, sub); err != nil {
		tb.t.Fatalf("create subscription %s: %v", name, err)
	}
	tb.routes = append(tb.routes, route{name: name, path: path, match: match})
}

// waitReady waits until every subscription is Ready, which needs a running operator.
func (tb *testbed) waitReady() {
	tb.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for _, r := range tb.routes {
		for {
			sub := &hookpostv1.WebhookSubscription{}
			err := tb.c.Get(tb.ctx, client.ObjectKey{Namespace: tb.ns, Name: r.name}, sub)
			if err == nil && meta.IsStatusConditionTrue(sub.Status.Conditions, hookpostv1.ConditionReady) {
				break
			}
			if time.Now().After(deadline) {
				tb.t.Fatalf("subscription %s not Ready within %s (get error %v, conditions %+v)", r.name, readyTimeout, err, sub.Status.Conditions)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// startOperator starts the operator binary with baseOperatorArgs and args, logging into the test's directory. It
// is stopped when the test ends, and its log's tail is printed when the test failed.
func (tb *testbed) startOperator(name string, args ...string) *harness.Operator {
	tb.t.Helper()
	logPath := filepath.Join(tb.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		tb.t.Fatalf("create operator log: %v", err)
	}
	op, err := harness.StartOperator(suite.operatorBinary, suite.cp.KubeconfigPath, f, append(append([]string{}, baseOperatorArgs...), args...)...)
	if err != nil {
		_ = f.Close()
		tb.t.Fatalf("start operator %s: %v", name, err)
	}
	tb.t.Cleanup(func() {
		op.Stop(30 * time.Second)
		_ = f.Close()
		if tb.t.Failed() {
			tb.t.Logf("last lines of operator %s's log:\n%s", name, tail(logPath, 40))
		}
	})
	return op
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// expected returns, per subscription, the ids of the events it must receive.
func (tb *testbed) expected(events []producedEvent) map[string]map[string]bool {
	want := map[string]map[string]bool{}
	for _, r := range tb.routes {
		want[r.name] = map[string]bool{}
		for _, ev := range events {
			if r.match(ev) {
				want[r.name][ev.ID] = true
			}
		}
	}
	return want
}

// subscribeOverlapping creates the two overlapping subscriptions the tests use: "orders" for order.* and
// "tenant-one" for every event of tenant 1.
func (tb *testbed) subscribeOverlapping() {
	tb.subscribe("orders", func(ev producedEvent) bool { return strings.HasPrefix(ev.Type, "order.") },
		fixtures.Events("order.*"))
	tb.subscribe("tenant-one", func(ev producedEvent) bool { return ev.Tenant == "1" },
		fixtures.Events("*"), fixtures.Filter([]string{"1"}, nil))
}

// alive reports whether the operator process is still running: its /proc entry goes when it has exited.
func alive(op *harness.Operator) bool {
	_, _, err := op.Usage()
	return err == nil
}

// freeLoopbackAddr returns a loopback address with a port free right now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrapeCounter reads one sample, named with its labels exactly as the exposition prints it, from the
// Prometheus endpoint at addr.
func scrapeCounter(ctx context.Context, addr, sample string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, nil // a counter never incremented is not exposed
}
