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

// deliveryWrites are the API server's counts of write requests on WebhookDeliveries, from apiserver_request_total.
type deliveryWrites struct {
	creates, statusPatches, otherWrites, deletes float64
}

// writes is what the report divides by the number of deliveries: creates, patches and updates of any kind.
func (w deliveryWrites) writes() float64 { return w.creates + w.statusPatches + w.otherWrites }

func (w deliveryWrites) minus(o deliveryWrites) deliveryWrites {
	return deliveryWrites{w.creates - o.creates, w.statusPatches - o.statusPatches, w.otherWrites - o.otherWrites, w.deletes - o.deletes}
}

// readDeliveryWrites scrapes the API server's /metrics through the control plane's client.
func readDeliveryWrites(ctx context.Context, cfg *rest.Config) (deliveryWrites, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return deliveryWrites{}, err
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return deliveryWrites{}, fmt.Errorf("read the API server's /metrics: %w", err)
	}
	var w deliveryWrites
	s := bufio.NewScanner(bytes.NewReader(raw))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="webhookdeliveries"`) {
			continue
		}
		labels, value, ok := strings.Cut(line[len("apiserver_request_total{"):], "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		status := strings.Contains(labels, `subresource="status"`)
		switch {
		case strings.Contains(labels, `verb="POST"`):
			w.creates += v
		case strings.Contains(labels, `verb="PATCH"`) && status:
			w.statusPatches += v
		case strings.Contains(labels, `verb="PATCH"`), strings.Contains(labels, `verb="PUT"`):
			w.otherWrites += v
		case strings.Contains(labels, `verb="DELETE"`), strings.Contains(labels, `verb="DELETECOLLECTION"`):
			w.deletes += v
		}
	}
	return w, s.Err()
}
