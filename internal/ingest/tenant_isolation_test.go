package ingest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ingest"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
)

// grant sets a namespace's tenant grant, as a cluster admin does with kubectl annotate.
func grant(t *testing.T, ns, tenants string) {
	t.Helper()
	n := &corev1.Namespace{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Name: ns}, n); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(n.DeepCopy())
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[hookpostv1.AnnotationTenants] = tenants
	if err := cp.Client.Patch(context.Background(), n, patch); err != nil {
		t.Fatal(err)
	}
}

func TestTenantIsolationDeliversOnlyToNamespacesGrantedTheTenant(t *testing.T) {
	acme, globex, all, none := namespace(t), namespace(t), namespace(t), namespace(t)
	grant(t, acme, "acme")
	grant(t, globex, " globex, initech ,")
	grant(t, all, "*")
	for _, ns := range []string{acme, globex, all, none} {
		subscribe(t, fixtures.Subscription(ns, "everything", "https://example.com/all", fixtures.Events("*")))
	}
	// A subscription filtering on a tenant its namespace is not granted receives nothing of it.
	subscribe(t, fixtures.Subscription(acme, "globex-spy", "https://example.com/spy", fixtures.Events("*"), fixtures.Filter([]string{"globex"}, nil)))

	src, table := newOutbox(t, postgres.Options{})
	ids := insert(t, table,
		row{typ: "order.created", tenant: "acme", payload: `{"order_id":1}`},
		row{typ: "order.created", tenant: "globex", payload: `{"order_id":2}`},
		row{typ: "system.maintenance", payload: `{"window":"sunday"}`},
		row{typ: "order.created", tenant: "umbrella", payload: `{"order_id":3}`},
	)
	startIngestWith(t, ingest.Options{TenantIsolation: true}, src)

	want := map[string][]string{
		acme:   {"everything/" + ids[0]},
		globex: {"everything/" + ids[1]},
		all:    sorted("everything/"+ids[0], "everything/"+ids[1], "everything/"+ids[2], "everything/"+ids[3]),
		none:   nil,
	}
	waitFor(t, "every granted delivery", func() bool { return len(deliveries(t, all)) == 4 })
	time.Sleep(500 * time.Millisecond) // nothing more arrives
	for ns, w := range want {
		if got := deliveries(t, ns); !slices.Equal(got, w) {
			t.Errorf("namespace granted %q got deliveries %v, want %v", grantOf(t, ns), got, w)
		}
	}

	// A grant given later applies to the events ingested after it.
	grant(t, none, "umbrella")
	time.Sleep(500 * time.Millisecond) // the ingester's cache sees the annotation
	later := insert(t, table, row{typ: "order.created", tenant: "umbrella", payload: `{"order_id":4}`})
	waitFor(t, "the newly granted namespace's delivery", func() bool { return len(deliveries(t, none)) == 1 })
	if got, w := deliveries(t, none), []string{"everything/" + later[0]}; !slices.Equal(got, w) {
		t.Errorf("after granting umbrella: deliveries %v, want %v", got, w)
	}
}

func TestWithoutTenantIsolationEveryNamespaceMatches(t *testing.T) {
	a, b := namespace(t), namespace(t)
	grant(t, a, "acme")
	for _, ns := range []string{a, b} {
		subscribe(t, fixtures.Subscription(ns, "everything", "https://example.com/all", fixtures.Events("*")))
	}
	src, table := newOutbox(t, postgres.Options{})
	ids := insert(t, table, row{typ: "order.created", tenant: "globex", payload: `{"order_id":1}`})
	startIngestWith(t, ingest.Options{TenantIsolation: false}, src)
	for _, ns := range []string{a, b} {
		waitFor(t, "a delivery in "+ns, func() bool { return slices.Equal(deliveries(t, ns), []string{"everything/" + ids[0]}) })
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func grantOf(t *testing.T, ns string) string {
	t.Helper()
	n := &corev1.Namespace{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Name: ns}, n); err != nil {
		t.Fatal(err)
	}
	return n.Annotations[hookpostv1.AnnotationTenants]
}
