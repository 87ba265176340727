package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// resourceWrites are the API server's counts of write requests on one resource, from apiserver_request_total.
type resourceWrites struct {
	creates      float64 // POST
	statusWrites float64 // PATCH or PUT of the status subresource
	otherWrites  float64 // PATCH or PUT of the object (labels, annotations, finalizers, spec)
	deletes      float64 // DELETE, DELETECOLLECTION (history pruning)
}

func (w resourceWrites) total() float64 {
	return w.creates + w.statusWrites + w.otherWrites + w.deletes
}

func (w resourceWrites) minus(o resourceWrites) resourceWrites {
	return resourceWrites{creates: w.creates - o.creates, statusWrites: w.statusWrites - o.statusWrites,
		otherWrites: w.otherWrites - o.otherWrites, deletes: w.deletes - o.deletes}
}

// apiWrites are the write counts on Hookpost's two kinds, apart: WebhookDeliveries scale with deliveries in the
// object-per-delivery mode, WebhookSubscriptions' status with flushes of counters.
type apiWrites struct {
	deliveries, subscriptions resourceWrites
}

func (w apiWrites) minus(o apiWrites) apiWrites {
	return apiWrites{deliveries: w.deliveries.minus(o.deliveries), subscriptions: w.subscriptions.minus(o.subscriptions)}
}

// metricsReader scrapes the API server's /metrics through the control plane's credentials.
type metricsReader struct {
	rest rest.Interface
}

func newMetricsReader(cfg *rest.Config) (metricsReader, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return metricsReader{}, err
	}
	return metricsReader{rest: cs.Discovery().RESTClient()}, nil
}

// writes reads the counters of write requests on WebhookDeliveries and WebhookSubscriptions since the API server
// started.
func (m metricsReader) writes(ctx context.Context) (apiWrites, error) {
	raw, err := m.rest.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return apiWrites{}, fmt.Errorf("read the API server's /metrics: %w", err)
	}
	var w apiWrites
	s := bufio.NewScanner(bytes.NewReader(raw))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		sample, ok := strings.CutPrefix(s.Text(), "apiserver_request_total{")
		if !ok {
			continue
		}
		labelText, value, ok := strings.Cut(sample, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		labels := parseLabels(labelText)
		switch labels["resource"] {
		case "webhookdeliveries":
			w.deliveries.add(labels, v)
		case "webhooksubscriptions":
			w.subscriptions.add(labels, v)
		}
	}
	return w, s.Err()
}

// add counts a sample of apiserver_request_total by its verb; reads are not counted.
func (w *resourceWrites) add(labels map[string]string, v float64) {
	switch labels["verb"] {
	case "POST":
		w.creates += v
	case "PATCH", "PUT":
		if labels["subresource"] == "status" {
			w.statusWrites += v
		} else {
			w.otherWrites += v
		}
	case "DELETE", "DELETECOLLECTION":
		w.deletes += v
	}
}

// parseLabels reads a Prometheus label set such as `code="201",resource="webhookdeliveries"`. The API server's
// label values hold no quotes or commas, so no unescaping is needed.
func parseLabels(s string) map[string]string {
	labels := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(pair, "=")
		if ok {
			labels[name] = strings.Trim(value, `"`)
		}
	}
	return labels
}
