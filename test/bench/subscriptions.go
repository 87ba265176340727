package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/signing"
	"github.com/hookpost/hookpost/test/fixtures"
)

// signingSecret is the Secret, in each run's namespace, that signs every subscription of the run: one Secret
// instead of one generated per subscription keeps the fan-out run's setup short.
const signingSecret = "bench-signing"

// subscribe creates the run's namespace, its signing Secret and count subscriptions matching every event (Envelope,
// HMACSHA256Hex, and opts), each posting to a receiver path of its own, and returns the receiver's routes.
func (b *bench) subscribe(ctx context.Context, ns string, count, events int, opts ...fixtures.SubscriptionOption) ([]*route, error) {
	c := b.cp.Client
	// The operator runs with tenant isolation on, its default; the bench's events carry tenant "1".
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Annotations: map[string]string{hookpostv1.AnnotationTenants: "1"}}}); err != nil {
		return nil, err
	}
	secret, err := signing.GenerateSecret(signing.SchemeHMACSHA256Hex)
	if err != nil {
		return nil, err
	}
	if err := c.Create(ctx, fixtures.SigningSecret(ns, signingSecret, map[string]string{"secret": secret})); err != nil {
		return nil, err
	}
	routes := make([]*route, 0, count)
	for i := range count {
		name := fmt.Sprintf("bench-%03d", i)
		path := "/" + ns + "/" + name
		rt, err := b.recv.expect(path, secret, events)
		if err != nil {
			return nil, err
		}
		routes = append(routes, rt)
		sub := fixtures.Subscription(ns, name, b.recv.URL+path, append([]fixtures.SubscriptionOption{fixtures.InsecureHTTP(), fixtures.Events("*"),
			fixtures.Format(hookpostv1.PayloadFormatEnvelope), fixtures.Scheme(hookpostv1.SigningSchemeHMACSHA256Hex),
			fixtures.SecretRef(signingSecret, "secret")}, opts...)...)
		if err := c.Create(ctx, sub); err != nil {
			return nil, err
		}
	}
	return routes, nil
}

// unsubscribe deletes the run's subscriptions and deliveries: no garbage collector runs, and the next run's
// operator must not see them.
func (b *bench) unsubscribe(ctx context.Context, ns string) {
	_ = b.cp.Client.DeleteAllOf(ctx, &hookpostv1.WebhookSubscription{}, client.InNamespace(ns))
	_ = b.cp.Client.DeleteAllOf(ctx, &hookpostv1.WebhookDelivery{}, client.InNamespace(ns))
}

// waitReady waits until every subscription in ns is Ready: an event matching one that is not would be handed to
// the delivery controller instead of attempted.
func (b *bench) waitReady(ctx context.Context, ns string, count int) error {
	for {
		var subs hookpostv1.WebhookSubscriptionList
		if err := b.cp.Client.List(ctx, &subs, client.InNamespace(ns)); err != nil {
			return err
		}
		ready := 0
		for _, s := range subs.Items {
			if meta.IsStatusConditionTrue(s.Status.Conditions, hookpostv1.ConditionReady) {
				ready++
			}
		}
		if ready == count {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d subscriptions in %s Ready: %w", ready, count, ns, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// subscriptionOptions are what a scenario sets on its subscriptions besides subscribe's defaults: the keyed runs
// retry a 503 after 1 s (the default schedule's first retry is a minute away), and the ordered one orders by the
// key the receiver checks.
func (s scenario) subscriptionOptions() []fixtures.SubscriptionOption {
	if s.keys == 0 {
		return nil
	}
	retries := make([]time.Duration, 25)
	for i := range retries {
		retries[i] = time.Second
	}
	opts := []fixtures.SubscriptionOption{fixtures.Schedule(retries...)}
	if s.ordered {
		opts = append(opts, fixtures.Ordering(fmt.Sprintf("string(int(data.seq) %% %d)", s.keys), hookpostv1.OrderingSkip))
	}
	return opts
}
