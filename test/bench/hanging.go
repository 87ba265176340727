package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
)

// subscribeHanging creates namespace ns with n subscriptions to every event, each to an endpoint of its own (a
// port, so a host for the per-host bound) that reads the request and never answers: one tenant's endpoints
// hanging for the whole 60 s attempt timeout. With answer set they answer with that status at once instead: 503
// is one tenant's endpoints down, which their circuit breakers stop attempting; 200 is the same work without a
// fault. The returned function releases the hanging requests, stops the endpoints and deletes what was created;
// call it even when an error is returned.
func (b *bench) subscribeHanging(ctx context.Context, ns string, n, answer int) (func(), error) {
	released := make(chan struct{})
	var servers []*http.Server
	stop := func() {
		close(released)
		for _, s := range servers {
			_ = s.Close()
		}
		b.unsubscribe(context.WithoutCancel(ctx), ns)
	}
	// Granted tenant "1", the bench events' tenant, like the measured namespace.
	if err := b.cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Annotations: map[string]string{hookpostv1.AnnotationTenants: "1"}}}); err != nil {
		return stop, err
	}
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answer != 0 {
			w.WriteHeader(answer)
			return
		}
		select {
		case <-released:
		case <-r.Context().Done():
		}
	})
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return stop, err
		}
		srv := &http.Server{Handler: hang, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() { _ = srv.Serve(l) }()
		sub := fixtures.Subscription(ns, fmt.Sprintf("hanging-%d", i), "http://"+l.Addr().String()+"/hook", fixtures.InsecureHTTP(),
			fixtures.Events("*"), fixtures.Timeout(60*time.Second))
		if err := b.cp.Client.Create(ctx, sub); err != nil {
			return stop, err
		}
	}
	return stop, nil
}
