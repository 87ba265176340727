package main

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ingest"
)

// namespace holds everything the demo applies, so the kubectl commands it suggests need no -n.
const namespace = "default"

// demoSubscription is one WebhookSubscription and how the receiver answers its endpoint.
type demoSubscription struct {
	name string
	path string
	spec hookpostv1.WebhookSubscriptionSpec
	// failFirst is how many requests the receiver answers 503 before it recovers.
	failFirst int
}

// urbackendSecret is the secret doc 002 lets a user choose; the demo puts it in a Secret the subscription names.
const (
	urbackendSecretName  = "urbackend-webhook-secret"
	urbackendSecretValue = "demo-urbackend-secret-change-me"
)

func demoSubscriptions() []demoSubscription {
	events := func(patterns ...string) []hookpostv1.EventPattern {
		out := make([]hookpostv1.EventPattern, len(patterns))
		for i, p := range patterns {
			out[i] = hookpostv1.EventPattern(p)
		}
		return out
	}
	return []demoSubscription{
		{
			// Product doc 000: the catalogue's events for tenant 123, Envelope format, hex HMAC-SHA256 in
			// X-Webhook-Signature with a generated secret, the default 1m..6h retry schedule.
			name: "urban-things", path: "/webhooks/urban-things",
			spec: hookpostv1.WebhookSubscriptionSpec{
				Events:        events("user.*", "order.*", "product.*", "category.*"),
				Filter:        &hookpostv1.EventFilter{Tenants: []string{"123"}},
				PayloadFormat: hookpostv1.PayloadFormatEnvelope,
			},
		},
		{
			// Product doc 002: collection events in the Collection format, signed in X-urBackend-Signature with a
			// secret the user chose, 4xx answers retried too.
			name: "urbackend-posts", path: "/urbackend-webhook",
			spec: hookpostv1.WebhookSubscriptionSpec{
				Events:        events("insert", "update", "delete"),
				Filter:        &hookpostv1.EventFilter{Collections: []string{"posts"}},
				PayloadFormat: hookpostv1.PayloadFormatCollection,
				Signing: hookpostv1.Signing{
					Header:    "X-urBackend-Signature",
					SecretRef: &hookpostv1.SecretKeyRef{Name: urbackendSecretName, Key: hookpostv1.DefaultSecretKey},
				},
				Retry: hookpostv1.RetryPolicy{RetryOn4xx: true},
			},
		},
		{
			// Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature, generated whsec_ secret.
			name: "standard-webhooks", path: "/webhooks/standard",
			spec: hookpostv1.WebhookSubscriptionSpec{
				Events:  events("order.*"),
				Signing: hookpostv1.Signing{Scheme: hookpostv1.SigningSchemeStandardWebhooks},
			},
		},
		{
			// An endpoint that is down for two attempts, with a schedule short enough to watch the retries: the
			// third attempt, the schedule's last, succeeds.
			name: "flaky-endpoint", path: "/webhooks/flaky", failFirst: 2,
			spec: hookpostv1.WebhookSubscriptionSpec{
				Events: events("order.created"),
				Retry: hookpostv1.RetryPolicy{Schedule: []metav1.Duration{
					{Duration: 2 * time.Second}, {Duration: 4 * time.Second},
				}},
			},
		},
	}
}

// object returns the WebhookSubscription pointing at the receiver listening on baseURL.
func (s demoSubscription) object(baseURL string) *hookpostv1.WebhookSubscription {
	spec := *s.spec.DeepCopy()
	spec.URL = baseURL + s.path
	spec.AllowInsecureHTTP = true // the receiver is plain http on 127.0.0.1
	return &hookpostv1.WebhookSubscription{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: s.name},
		Spec:       spec,
	}
}

func urbackendSecret() *corev1.Secret {
	return &corev1.Secret{
		// Labelled so the operator, which watches only Secrets labelled for it, may sign with it.
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: urbackendSecretName, Labels: map[string]string{hookpostv1.LabelSigningSecret: "true"}},
		StringData: map[string]string{hookpostv1.DefaultSecretKey: urbackendSecretValue},
	}
}

// matchingSubscriptions returns the names of the subscriptions that receive ev, matched by ingest's own index, so
// the demo knows how many deliveries to wait for.
func matchingSubscriptions(subs []demoSubscription, ev sampleEvent) []string {
	in := make([]*ingest.Subscription, 0, len(subs))
	for _, s := range subs {
		in = append(in, ingest.FromAPI(s.object("http://127.0.0.1")))
	}
	var names []string
	for _, m := range ingest.NewIndex(in).Match(ingest.Event{Type: ev.eventType, TenantID: ev.tenant, Collection: ev.collection, OccurredAt: time.Now()}, nil) {
		names = append(names, m.Name)
	}
	return names
}

type sampleEvent struct {
	eventType, tenant, collection string
	data                          string
}

// sampleEvents are product doc 000's catalogue with the doc's example data (tenant 123), and doc 002's insert.
func sampleEvents() []sampleEvent {
	return []sampleEvent{
		{eventType: "user.registered", tenant: "123",
			data: `{"user_id": 42, "name": "John Doe", "email": "john@example.com", "role": "MEMBER", "invited_by": 17}`},
		{eventType: "order.created", tenant: "123",
			data: `{"order_id": 1001, "user_id": 42, "total": 299.99, "items_count": 3, "status": "pending"}`},
		{eventType: "product.updated", tenant: "123",
			data: `{"product_id": 55, "name": "Wireless Headphones", "price": 199.99, "stock": 45, "changed_fields": ["price", "stock"]}`},
		{eventType: "category.created", tenant: "123",
			data: `{"category_id": 7, "name": "Audio", "parent_id": null}`},
		{eventType: "insert", collection: "posts",
			data: `{"_id": "64fd1234abcd5678ef901234", "title": "Hello World", "body": "Content here..."}`},
	}
}
