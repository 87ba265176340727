package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// world is what every source's run shares.
type world struct {
	ctx     context.Context
	dir     string
	binary  string
	cp      *harness.ControlPlane
	recv    *receiver
	n       int
	timeout time.Duration
}

// baseOperatorArgs are the flags every run passes besides the source's: the receiver is on loopback. Everything
// else is the operator's default, so the figures are what a user gets out of the box.
var baseOperatorArgs = []string{"--allow-cidr=127.0.0.1/32"}

// producer puts the run's n events into the source, each with data.sent_at_ns set when it is produced.
type producer func(ctx context.Context, n int) error

func (w world) measurePostgres(pg *harness.Postgres) (result, error) {
	pool, err := pgxpool.New(w.ctx, pg.DSN())
	if err != nil {
		return result{}, err
	}
	defer pool.Close()
	if _, err := pool.Exec(w.ctx, postgres.DDL("", "")); err != nil {
		return result{}, fmt.Errorf("migrate the outbox: %w", err)
	}
	// Producers write in transactions of chunk events, as an application's business transactions would, but
	// larger, so the producer is never the bottleneck.
	const chunk = 500
	produce := func(ctx context.Context, n int) error {
		for first := 0; first < n; first += chunk {
			rows := make([][]any, 0, chunk)
			for i := first; i < min(first+chunk, n); i++ {
				rows = append(rows, []any{"order.created", "1", "orders", json.RawMessage(fmt.Sprintf(`{"seq":%d,"sent_at_ns":%d}`, i, time.Now().UnixNano()))})
			}
			if _, err := pool.CopyFrom(ctx, pgx.Identifier{postgres.DefaultTable},
				[]string{"event_type", "tenant_id", "collection", "payload"}, pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("insert events: %w", err)
			}
		}
		return nil
	}
	return w.measure("postgres", []string{"--postgres-dsn=" + pg.DSN()}, produce)
}

func (w world) measureNATS(srv *harness.NATS) (result, error) {
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		return result{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return result{}, err
	}
	// The stream as the operator would create it, so events can be published before it starts.
	if _, err := js.CreateOrUpdateStream(w.ctx, jetstream.StreamConfig{Name: natssource.DefaultStream,
		Subjects: []string{natssource.DefaultSubjectPrefix + ">"}, Storage: jetstream.FileStorage,
		Duplicates: natssource.DefaultDuplicateWindow}); err != nil {
		return result{}, fmt.Errorf("create stream: %w", err)
	}
	produce := func(ctx context.Context, n int) error {
		const publishers = 8
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, publishers)
		for p := 0; p < publishers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					now := time.Now()
					ev := source.Event{ID: fmt.Sprintf("bench-%d", i), Type: "order.created", TenantID: "1", Collection: "orders",
						OccurredAt: now, Data: []byte(fmt.Sprintf(`{"seq":%d,"sent_at_ns":%d}`, i, now.UnixNano()))}
					if err := natssource.Publish(ctx, js, "", ev); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	return w.measure("nats", []string{"--nats-url=" + srv.URL()}, produce)
}

// measure runs one source: a subscription, the operator, n events produced, and waits until all arrived.
func (w world) measure(src string, sourceArgs []string, produce producer) (result, error) {
	ctx, cancel := context.WithTimeout(w.ctx, w.timeout)
	defer cancel()
	c := w.cp.Client
	ns := "bench-" + src
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return result{}, err
	}
	path := "/" + src
	sub := fixtures.Subscription(ns, src, w.recv.URL+path, fixtures.InsecureHTTP(), fixtures.Events("*"),
		fixtures.Format(hookpostv1.PayloadFormatEnvelope))
	if err := c.Create(ctx, sub); err != nil {
		return result{}, err
	}
	defer func() {
		// No garbage collector runs: delete what the next run's operator should not see.
		cleanup := context.WithoutCancel(ctx)
		_ = c.DeleteAllOf(cleanup, &hookpostv1.WebhookSubscription{}, client.InNamespace(ns))
		_ = c.DeleteAllOf(cleanup, &hookpostv1.WebhookDelivery{}, client.InNamespace(ns))
	}()

	args := append(append([]string{}, baseOperatorArgs...), sourceArgs...)
	logPath := filepath.Join(w.dir, "operator-"+src+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return result{}, err
	}
	defer logFile.Close()
	step(fmt.Sprintf("Starting the operator for %s (log %s)", src, logPath))
	op, err := harness.StartOperator(w.binary, w.cp.KubeconfigPath, logFile, args...)
	if err != nil {
		return result{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			op.Stop(30 * time.Second)
		}
	}()
	secret, err := w.waitForSecret(ctx, ns, src)
	if err != nil {
		return result{}, err
	}
	rt, err := w.recv.expect(path, secret, w.n)
	if err != nil {
		return result{}, err
	}
	before, err := readDeliveryWrites(ctx, w.cp.Config)
	if err != nil {
		return result{}, err
	}

	step(fmt.Sprintf("Producing %d events into %s", w.n, src))
	start := time.Now()
	if err := produce(ctx, w.n); err != nil {
		return result{}, err
	}
	step(fmt.Sprintf("Produced in %s; waiting for the receiver", time.Since(start).Round(time.Millisecond)))
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
wait:
	for {
		select {
		case <-rt.completed:
			break wait
		case <-progress.C:
			distinct, requests, badSig, _, _, _ := w.recv.snapshot(rt)
			step(fmt.Sprintf("%d of %d received (%d requests, %d bad signatures)", distinct, w.n, requests, badSig))
		case <-ctx.Done():
			distinct, _, _, _, _, _ := w.recv.snapshot(rt)
			return result{}, fmt.Errorf("only %d of %d events received before giving up: %w (operator log %s)", distinct, w.n, ctx.Err(), logPath)
		}
	}
	_, requests, badSig, _, last, latencies := w.recv.snapshot(rt)
	// Status patches trail the receipts: count writes once the API server has seen one per event.
	after, err := w.waitStatusPatches(ctx, before, float64(w.n))
	if err != nil {
		return result{}, err
	}
	peakRSS, cpu, err := op.Usage()
	if err != nil {
		return result{}, fmt.Errorf("operator usage: %w", err)
	}
	op.Stop(30 * time.Second)
	stopped = true

	l := sortedLatencies(latencies)
	return result{source: src, operatorArgs: args, elapsed: last.Sub(start),
		p50: percentile(l, 0.50), p95: percentile(l, 0.95), p99: percentile(l, 0.99), pmax: l[len(l)-1],
		requests: requests, badSig: badSig, writes: after.minus(before), peakRSS: peakRSS, cpu: cpu}, nil
}

// waitForSecret waits for the subscription to be Ready and returns its generated signing secret.
func (w world) waitForSecret(ctx context.Context, ns, name string) (string, error) {
	for {
		sub := &hookpostv1.WebhookSubscription{}
		if err := w.cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sub); err != nil {
			return "", err
		}
		if ref := sub.Status.SigningSecretRef; ref != nil && meta.IsStatusConditionTrue(sub.Status.Conditions, hookpostv1.ConditionReady) {
			s := &corev1.Secret{}
			if err := w.cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, s); err != nil {
				return "", err
			}
			return string(s.Data[ref.Key]), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("subscription %s/%s not Ready: %w", ns, name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitStatusPatches waits until the API server counts n status patches of WebhookDeliveries since before, or
// stops counting more for 10s (a patch may have failed and been retried as something else), and returns the
// counts then. It does not wait for the subscription's status.delivered to reach n: under load that counter
// loses prunedSucceeded increments and stays short of n.
func (w world) waitStatusPatches(ctx context.Context, before deliveryWrites, n float64) (deliveryWrites, error) {
	var last deliveryWrites
	lastChange := time.Now()
	for {
		now, err := readDeliveryWrites(ctx, w.cp.Config)
		if err != nil {
			return deliveryWrites{}, err
		}
		if now.minus(before).statusPatches >= n {
			return now, nil
		}
		if now != last {
			last, lastChange = now, time.Now()
		} else if time.Since(lastChange) > 10*time.Second {
			return now, nil
		}
		select {
		case <-ctx.Done():
			return deliveryWrites{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
