package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// The memory scenario: many subscriptions and many retained finished deliveries, no events. It measures what the
// operator holds in memory for objects at rest, with its cache transforms on (the default) and, in the same run
// against the same objects, off (--cache-transforms=false).

const memoryNamespace = "bench-memory"

// memoryResult is one operator process's figures over the memory scenario.
type memoryResult struct {
	transforms bool
	synced     time.Duration // from start until both controllers had reconciled every object and writes stopped
	peakRSS    int64         // VmHWM since the process started
	steadyRSS  int64         // median VmRSS over memorySteadySamples once synced
	heapInuse  int64         // go_memstats_heap_inuse_bytes once synced
}

// memoryRun is the scenario's setup figures and each operator's.
type memoryRun struct {
	subscriptions, deliveries int
	created                   time.Duration
	results                   []memoryResult
}

const (
	memorySteadySamples = 10
	memorySampleEvery   = time.Second
)

// measureMemory creates the objects, then runs the operator with transforms on and then off. On runs first: the
// first operator also writes every subscription's status, so the comparison errs against the transforms.
func (b *bench) measureMemory() (*memoryRun, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.timeout)
	defer cancel()
	cfg := rest.CopyConfig(b.cp.Config)
	cfg.QPS, cfg.Burst = 1e6, 1e6
	c, err := client.New(cfg, client.Options{Scheme: harness.Scheme()})
	if err != nil {
		return nil, err
	}
	defer b.unsubscribe(context.WithoutCancel(ctx), memoryNamespace)
	run := &memoryRun{subscriptions: b.cfg.memorySubs, deliveries: b.cfg.memoryDeliveries}
	start := time.Now()
	if err := createMemoryObjects(ctx, c, b.recv.URL, run.subscriptions, run.deliveries, b.cfg.memoryWorkers); err != nil {
		return nil, err
	}
	run.created = time.Since(start)
	step(fmt.Sprintf("Created %d subscriptions and %d finished deliveries in %s", run.subscriptions, run.deliveries, run.created.Round(time.Second)))
	for _, transforms := range []bool{true, false} {
		r, err := b.measureOperatorMemory(ctx, run, transforms)
		if err != nil {
			return nil, fmt.Errorf("cache transforms %t: %w", transforms, err)
		}
		run.results = append(run.results, r)
	}
	return run, nil
}

// createMemoryObjects creates the namespace, a signing Secret, subs subscriptions (each with the
// last-applied-configuration annotation `kubectl apply` leaves) and dels finished deliveries spread over them
// (every tenth Failed, the rest Succeeded; a ~1 KiB payload each, owned by their subscription as ingest's are).
func createMemoryObjects(ctx context.Context, c client.Client, url string, subs, dels, workers int) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: memoryNamespace}}); err != nil {
		return err
	}
	if err := c.Create(ctx, fixtures.SigningSecret(memoryNamespace, signingSecret,
		map[string]string{"secret": "bench-memory-signing-secret"})); err != nil {
		return err
	}
	owners := make([]*hookpostv1.WebhookSubscription, subs)
	step(fmt.Sprintf("Creating %d subscriptions with %d workers", subs, workers))
	if err := parallel(ctx, subs, workers, func(i int) error {
		name := fmt.Sprintf("memory-%05d", i)
		sub := fixtures.Subscription(memoryNamespace, name, url+"/memory/"+name, fixtures.InsecureHTTP(), fixtures.Events("*"),
			fixtures.SecretRef(signingSecret, "secret"))
		sub.TypeMeta = metav1.TypeMeta{APIVersion: hookpostv1.GroupVersion.String(), Kind: "WebhookSubscription"}
		applied, err := json.Marshal(sub)
		if err != nil {
			return err
		}
		sub.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(applied)}
		if err := c.Create(ctx, sub); err != nil {
			return fmt.Errorf("create subscription %s: %w", name, err)
		}
		owners[i] = sub
		return nil
	}); err != nil {
		return err
	}
	payload := memoryPayload()
	step(fmt.Sprintf("Creating %d finished deliveries (create + status patch each) with %d workers", dels, workers))
	var done atomic.Int64
	stopProgress := progress(func() string { return fmt.Sprintf("%d of %d deliveries created", done.Load(), dels) })
	defer stopProgress()
	return parallel(ctx, dels, workers, func(i int) error {
		owner := owners[i%subs]
		id := fmt.Sprintf("memory-evt-%06d", i)
		occurred := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
		d := &hookpostv1.WebhookDelivery{
			ObjectMeta: metav1.ObjectMeta{Namespace: memoryNamespace, Name: hookpostv1.DeliveryName(owner.Name, id),
				Labels: map[string]string{hookpostv1.LabelSubscription: owner.Name, hookpostv1.LabelEventType: "order.created"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: hookpostv1.GroupVersion.String(), Kind: "WebhookSubscription",
					Name: owner.Name, UID: owner.UID, Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true)}}},
			Spec: hookpostv1.WebhookDeliverySpec{
				SubscriptionName: owner.Name,
				Event:            hookpostv1.EventMeta{ID: id, Type: "order.created", TenantID: strconv.Itoa(i % 97), OccurredAt: occurred},
				Data:             &apiextensionsv1.JSON{Raw: payload},
			},
		}
		if err := c.Create(ctx, d); err != nil {
			return fmt.Errorf("create delivery %s: %w", d.Name, err)
		}
		patch := client.MergeFrom(d.DeepCopy())
		d.Status = finishedStatus(i%10 == 0, occurred.Add(time.Second))
		if err := c.Status().Patch(ctx, d, patch); err != nil {
			return fmt.Errorf("finish delivery %s: %w", d.Name, err)
		}
		done.Add(1)
		return nil
	})
}

// finishedStatus is the status the delivery controller leaves after one attempt that succeeded, or one a
// receiver rejected for good.
func finishedStatus(failed bool, at time.Time) hookpostv1.WebhookDeliveryStatus {
	t := metav1.NewTime(at)
	rec := hookpostv1.AttemptRecord{Number: 1, Time: t, Duration: metav1.Duration{Duration: 12 * time.Millisecond}, StatusCode: 200, ResponseBody: `{"received":true}`}
	s := hookpostv1.WebhookDeliveryStatus{Phase: hookpostv1.DeliverySucceeded, Attempts: 1, LastAttempt: &rec,
		History: []hookpostv1.AttemptRecord{rec}, CompletionTime: &t}
	cond := metav1.Condition{Type: hookpostv1.ConditionDelivered, Status: metav1.ConditionTrue, Reason: hookpostv1.ReasonSucceeded,
		Message: "the receiver answered 200", LastTransitionTime: t}
	if failed {
		rec.StatusCode, rec.ResponseBody = 400, `{"error":"unknown order"}`
		s.Phase, s.LastAttempt, s.History = hookpostv1.DeliveryFailed, &rec, []hookpostv1.AttemptRecord{rec}
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, hookpostv1.ReasonRejected, "the receiver answered 400, which is not retried"
	}
	meta.SetStatusCondition(&s.Conditions, cond)
	return s
}

// memoryPayload is a ~1 KiB order event, the size of a typical webhook payload.
func memoryPayload() []byte {
	items := make([]map[string]any, 8)
	for i := range items {
		items[i] = map[string]any{"sku": fmt.Sprintf("SKU-%06d", 100+i), "name": "Widget, large, blue", "quantity": i + 1, "unit_price": 19.99}
	}
	raw, err := json.Marshal(map[string]any{"order_id": 1001, "customer": map[string]any{"id": 42, "email": "buyer@example.com"},
		"currency": "EUR", "total": 299.99, "status": "pending", "items": items})
	if err != nil {
		panic(err)
	}
	return raw
}

// measureOperatorMemory starts an operator, waits until it has reconciled every object and its writes stopped,
// samples its memory and stops it.
func (b *bench) measureOperatorMemory(ctx context.Context, run *memoryRun, transforms bool) (memoryResult, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return memoryResult{}, err
	}
	args := slices.Concat(baseOperatorArgs, []string{fmt.Sprintf("--cache-transforms=%t", transforms), "--metrics-bind-address=" + addr}, b.cfg.operatorArgs)
	op, err := b.startOperator(fmt.Sprintf("memory-transforms-%t", transforms), args)
	if err != nil {
		return memoryResult{}, err
	}
	defer op.stop()
	start := time.Now()
	res := memoryResult{transforms: transforms}
	metricsURL := "http://" + addr + "/metrics"
	// Synced: each controller has reconciled at least once per object and its queue is empty.
	for {
		m, err := scrape(ctx, metricsURL)
		if err == nil && m.sum(`controller_runtime_reconcile_total{controller="webhookdelivery"`) >= float64(run.deliveries) &&
			m.sum(`controller_runtime_reconcile_total{controller="webhooksubscription"`) >= float64(run.subscriptions) &&
			m.sum(`workqueue_depth{controller="webhookdelivery"`) == 0 && m.sum(`workqueue_depth{controller="webhooksubscription"`) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return memoryResult{}, fmt.Errorf("operator did not reconcile every object (log %s): %w", op.logPath, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	procs := []measured{{name: processOperator, pids: onePid(op.Pid())}}
	if _, err := b.settle(ctx, procs); err != nil {
		return memoryResult{}, err
	}
	res.synced = time.Since(start)
	step(fmt.Sprintf("Operator synced and quiet after %s; sampling its memory for %s", res.synced.Round(time.Second), memorySteadySamples*memorySampleEvery))
	var rss []int64
	for range memorySteadySamples {
		r, err := residentSet(op.Pid())
		if err != nil {
			return memoryResult{}, err
		}
		rss = append(rss, r)
		time.Sleep(memorySampleEvery)
	}
	slices.Sort(rss)
	res.steadyRSS = rss[len(rss)/2]
	res.peakRSS = procs[0].sample().peakRSS
	m, err := scrape(ctx, metricsURL)
	if err != nil {
		return memoryResult{}, err
	}
	res.heapInuse = int64(m.sum("go_memstats_heap_inuse_bytes"))
	return res, nil
}

// promSample is a scraped metrics page: each sample line's series (name and labels) and value.
type promSample map[string]float64

// sum adds the values of every series starting with prefix.
func (p promSample) sum(prefix string) float64 {
	var s float64
	for k, v := range p {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

func scrape(ctx context.Context, url string) (promSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	out := promSample{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// residentSet is a process's current resident set (VmRSS) in bytes.
func residentSet(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// progress prints what report says every 10 s until the returned function is called.
func progress(report func() string) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				step(report())
			}
		}
	}()
	return func() { close(done) }
}

func ptrTo[T any](v T) *T { return &v }

// reportMemory prints the memory scenario's table.
func reportMemory(out io.Writer, run *memoryRun) {
	fmt.Fprintf(out, "\nMemory at rest: %d WebhookSubscriptions (with kubectl's last-applied-configuration) and %d retained "+
		"finished WebhookDeliveries (~%d B payload each), no events; objects created in %s. RSS in MiB:\n\n",
		run.subscriptions, run.deliveries, len(memoryPayload()), run.created.Round(time.Second))
	tw := newTable(out)
	fmt.Fprintln(tw, "cache transforms\tsynced after\tpeak RSS\tsteady RSS\tGo heap in use\t")
	for _, r := range run.results {
		fmt.Fprintf(tw, "%t\t%s\t%s\t%s\t%s\t\n", r.transforms, r.synced.Round(time.Second), mib(r.peakRSS), mib(r.steadyRSS), mib(r.heapInuse))
	}
	_ = tw.Flush()
	if len(run.results) == 2 && run.results[1].steadyRSS > 0 {
		on, off := run.results[0], run.results[1]
		fmt.Fprintf(out, "  transforms save %s MiB steady RSS (%.0f%%), %s MiB peak\n", mib(off.steadyRSS-on.steadyRSS),
			100*float64(off.steadyRSS-on.steadyRSS)/float64(off.steadyRSS), mib(off.peakRSS-on.peakRSS))
	}
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 0, 64) }
