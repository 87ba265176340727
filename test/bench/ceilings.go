package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/envelope"
	"github.com/hookpost/hookpost/internal/signing"
	"github.com/hookpost/hookpost/test/harness"
)

// httpCeiling posts n signed Envelope bodies, built as the operator builds them, to the receiver from a plain
// client with workers goroutines, and returns requests per second.
func httpCeiling(ctx context.Context, recv *receiver, n, workers int) (float64, error) {
	secret, err := signing.GenerateSecret(signing.SchemeHMACSHA256Hex)
	if err != nil {
		return 0, err
	}
	rt, err := recv.expect("/ceiling-http", secret, n)
	if err != nil {
		return 0, err
	}
	type signed struct {
		id   string
		body []byte
		sig  http.Header
	}
	reqs := make([]signed, n)
	for i := range reqs {
		now := time.Now()
		ev := envelope.Event{ID: fmt.Sprintf("ceiling-%d", i), Type: "order.created", TenantID: "1", OccurredAt: now,
			Data: []byte(fmt.Sprintf(`{"seq":%d,"sent_at_ns":%d}`, i, now.UnixNano()))}
		body, _, err := envelope.Build(envelope.FormatEnvelope, ev)
		if err != nil {
			return 0, err
		}
		sig, err := signing.Headers(signing.SchemeHMACSHA256Hex, "", secret, signing.Message{ID: ev.ID, Timestamp: now, Body: body})
		if err != nil {
			return 0, err
		}
		reqs[i] = signed{id: ev.ID, body: body, sig: sig}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers}, Timeout: 30 * time.Second}
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, recv.URL+"/ceiling-http", bytes.NewReader(reqs[i].body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(delivery.HeaderEventID, reqs[i].id)
				for k, v := range reqs[i].sig {
					req.Header[k] = v
				}
				resp, err := hc.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if resp != nil {
					_ = resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d of %d ceiling requests failed", f, n)
	}
	if got := recv.receipts([]*route{rt}); got.distinct != n || got.badSig > 0 {
		return 0, fmt.Errorf("receiver verified %d of %d ceiling requests, %d bad signatures", got.distinct, n, got.badSig)
	}
	return float64(n) / elapsed.Seconds(), nil
}

// apiCeiling creates n WebhookDeliveries and then patches each one's status to Succeeded, as ingest and the
// delivery controller do, from a plain client with workers goroutines; it returns objects (one create and one
// status patch each) per second. No operator runs meanwhile, and the objects are deleted afterwards.
func apiCeiling(ctx context.Context, cp *harness.ControlPlane, n, workers int) (float64, error) {
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 1e6, 1e6
	c, err := client.New(cfg, client.Options{Scheme: harness.Scheme()})
	if err != nil {
		return 0, err
	}
	const ns = "bench-api-ceiling"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 0, err
	}
	defer func() {
		_ = c.DeleteAllOf(context.WithoutCancel(ctx), &hookpostv1.WebhookDelivery{}, client.InNamespace(ns))
	}()
	objects := make([]*hookpostv1.WebhookDelivery, n)
	now := metav1.Now()
	for i := range objects {
		id := fmt.Sprintf("ceiling-%d", i)
		objects[i] = &hookpostv1.WebhookDelivery{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: hookpostv1.DeliveryName("ceiling", id),
				Labels: map[string]string{hookpostv1.LabelSubscription: "ceiling", hookpostv1.LabelEventType: "order.created"}},
			Spec: hookpostv1.WebhookDeliverySpec{
				SubscriptionName: "ceiling",
				Event:            hookpostv1.EventMeta{ID: id, Type: "order.created", TenantID: "1", OccurredAt: now},
				Data:             &apiextensionsv1.JSON{Raw: []byte(fmt.Sprintf(`{"seq":%d,"sent_at_ns":%d}`, i, now.UnixNano()))},
			},
		}
	}
	run := func(op func(d *hookpostv1.WebhookDelivery) error) error {
		var next atomic.Int64
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					if err := op(objects[i]); err != nil {
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
	start := time.Now()
	if err := run(func(d *hookpostv1.WebhookDelivery) error { return c.Create(ctx, d) }); err != nil {
		return 0, fmt.Errorf("create deliveries: %w", err)
	}
	if err := run(func(d *hookpostv1.WebhookDelivery) error {
		before := d.DeepCopy()
		at := metav1.Now()
		d.Status = hookpostv1.WebhookDeliveryStatus{
			Phase: hookpostv1.DeliverySucceeded, Attempts: 1, CompletionTime: &at,
			LastAttempt: &hookpostv1.AttemptRecord{Number: 1, Time: at, StatusCode: 200, Duration: metav1.Duration{Duration: time.Millisecond}},
			Conditions: []metav1.Condition{{Type: hookpostv1.ConditionDelivered, Status: metav1.ConditionTrue,
				Reason: hookpostv1.ReasonSucceeded, Message: "the receiver answered 200", LastTransitionTime: at}},
		}
		d.Status.History = []hookpostv1.AttemptRecord{*d.Status.LastAttempt}
		return c.Status().Patch(ctx, d, client.MergeFrom(before))
	}); err != nil {
		return 0, fmt.Errorf("patch delivery status: %w", err)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
