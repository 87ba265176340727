package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ingest"
	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/internal/source"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// refuseDeliveriesIn installs a ValidatingAdmissionPolicy, bound to namespace ns only, that denies every
// WebhookDelivery create there with reason Forbidden (as a cluster admin keeping a namespace from receiving
// webhooks would), waits until the API server enforces it, and returns a func that lifts it.
func refuseDeliveriesIn(t *testing.T, ns string) (lift func()) {
	t.Helper()
	ctx := context.Background()
	name := "no-deliveries-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{hookpostv1.GroupVersion.Group}, APIVersions: []string{"*"},
						Resources: []string{"webhookdeliveries"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "webhooks are not delivered in this namespace",
				Reason: ptr.To(metav1.StatusReasonForbidden)}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	lift = func() {
		for _, o := range []client.Object{binding, policy} {
			if err := cp.Client.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the policy lifted", func() bool { return probe(t, ns) == nil })
	}
	t.Cleanup(func() { _ = cp.Client.Delete(ctx, binding); _ = cp.Client.Delete(ctx, policy) })
	waitFor(t, "the policy enforced", func() bool { return apierrors.IsForbidden(probe(t, ns)) })
	return lift
}

// probe tries a WebhookDelivery create in ns without storing it.
func probe(t *testing.T, ns string) error {
	t.Helper()
	d := fixtures.Delivery(ns, "probe", "probe", "probe.created", map[string]any{})
	return cp.Client.Create(context.Background(), d, client.DryRunAll)
}

// refusalOperator is ingest as the binary wires it, with its Refusals on a fake clock.
type refusalOperator struct {
	clock  *clocktesting.FakePassiveClock
	ledger *ledgerpg.Writer
}

func newLedger(t *testing.T, table string) *ledgerpg.Writer {
	t.Helper()
	w, err := ledgerpg.New(context.Background(), ledgerpg.Options{DSN: pg.DSN(), Table: "ledger_" + table, Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	if err := w.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

// ledgerOf returns what the ledger holds for ns, once it holds n rows.
func ledgerOf(t *testing.T, w *ledgerpg.Writer, ns string, n int) []ledger.Attempt {
	t.Helper()
	var got []ledger.Attempt
	waitFor(t, fmt.Sprintf("%d ledger rows in %s", n, ns), func() bool {
		if err := w.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		var err error
		got, err = w.Query(context.Background(), ledgerpg.Filter{Namespace: ns})
		return err == nil && len(got) >= n
	})
	return got
}

// warnings returns the notes of the Warning Events with reason on subscription sub in ns.
func warnings(t *testing.T, ns, sub, reason string) []string {
	t.Helper()
	list := &corev1.EventList{}
	if err := cp.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == sub && e.InvolvedObject.Kind == "WebhookSubscription" && e.Type == corev1.EventTypeWarning && e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

func refusedCondition(t *testing.T, ns, name string) *metav1.Condition {
	t.Helper()
	return meta.FindStatusCondition(getSubscription(t, ns, name).Status.Conditions, hookpostv1.ConditionDeliveriesRefused)
}

// TestAdmissionDenialInOneNamespaceHoldsBackNoOther (object-per-delivery mode): a ValidatingAdmissionPolicy
// refuses WebhookDeliveries in namespace A. Events matching subscriptions in A and in B: B's deliveries are made,
// the batch is acknowledged, and A's refusals are not silently dropped: each is in the ledger (outcome refused),
// the subscription has DeliveriesRefused=True and one Warning Event for the three. Once the policy is lifted, the
// next event's delivery is created in A and the condition turns False.
func TestAdmissionDenialInOneNamespaceHoldsBackNoOther(t *testing.T) {
	nsA, nsB := namespace(t), namespace(t)
	subscribe(t, fixtures.Subscription(nsA, "a", "https://example.com/a"), fixtures.Subscription(nsB, "b", "https://example.com/b"))
	lift := refuseDeliveriesIn(t, nsA)
	src, table := newOutbox(t, postgres.Options{})
	op := refusalOperator{clock: clocktesting.NewFakePassiveClock(time.Now()), ledger: newLedger(t, table)}

	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{Scheme: harness.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	refusals := ingest.NewRefusals(ingest.RefusalsOptions{Client: mgr.GetClient(), Reader: mgr.GetCache(), Direct: mgr.GetAPIReader(),
		Events: mgr.GetEventRecorder("hookpost-ingest"), Ledger: op.ledger, Clock: op.clock})
	d := ingest.DeliveryCreator{Client: mgr.GetClient(), Refusals: refusals}
	if err := mgr.Add(ingest.New(src, mgr.GetCache(), d, ingest.Options{BatchSize: 100, RetryDelay: 200 * time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	ids := insert(t, table, row{"order.created", "", "", `{"n":1}`}, row{"order.created", "", "", `{"n":2}`}, row{"order.created", "", "", `{"n":3}`})
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	if got, want := deliveries(t, nsB), sortedCopy([]string{"b/" + ids[0], "b/" + ids[1], "b/" + ids[2]}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("namespace B deliveries = %v, want %v", got, want)
	}
	if got := deliveries(t, nsA); len(got) != 0 {
		t.Fatalf("namespace A deliveries = %v, want none: the policy refuses them", got)
	}

	rows := ledgerOf(t, op.ledger, nsA, 3)
	refused := map[string]bool{}
	for _, a := range rows {
		if a.Outcome != ledger.OutcomeRefused || a.Number != 0 || a.Subscription != "a" || a.ErrorClass != "Refused" ||
			!strings.Contains(a.Error, "webhooks are not delivered in this namespace") {
			t.Errorf("ledger row %+v, want attempt 0 of subscription a, outcome refused, with the policy's message", a)
		}
		refused[a.EventID] = true
	}
	if len(rows) != 3 || !refused[ids[0]] || !refused[ids[1]] || !refused[ids[2]] {
		t.Fatalf("ledger holds %d rows for %v, want one refused row per event %v", len(rows), refused, ids)
	}
	waitFor(t, "DeliveriesRefused=True on a", func() bool {
		c := refusedCondition(t, nsA, "a")
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == hookpostv1.ReasonAdmissionDenied
	})
	if c := refusedCondition(t, nsA, "a"); !strings.Contains(c.Message, "webhooks are not delivered in this namespace") || !strings.Contains(c.Message, "outcome refused") {
		t.Errorf("condition message %q, want the policy's message and where the events are", c.Message)
	}
	waitFor(t, "a Warning Event on a", func() bool { return len(warnings(t, nsA, "a", hookpostv1.ReasonAdmissionDenied)) > 0 })
	if c := refusedCondition(t, nsB, "b"); c != nil {
		t.Errorf("subscription b has %+v, want no DeliveriesRefused condition", c)
	}

	// The policy is lifted; a minute later the next event is delivered in A, and the condition says so.
	lift()
	op.clock.SetTime(op.clock.Now().Add(ingest.DefaultRefusalQuiet))
	next := insert(t, table, row{"order.created", "", "", `{"n":4}`})
	waitFor(t, "the next event's delivery in A", func() bool { return len(deliveries(t, nsA)) == 1 })
	waitFor(t, "DeliveriesRefused=False on a", func() bool {
		c := refusedCondition(t, nsA, "a")
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == hookpostv1.ReasonDeliveriesCreated
	})
	if got := deliveries(t, nsA); got[0] != "a/"+next[0] {
		t.Errorf("namespace A deliveries = %v, want a/%s", got, next[0])
	}
	// Three refusals within a minute made one Event.
	if n := len(warnings(t, nsA, "a", hookpostv1.ReasonAdmissionDenied)); n != 1 {
		t.Errorf("%d Warning Events for 3 refusals within a minute, want 1", n)
	}
}

// TestAdmissionDenialAfterAFailedFirstAttempt (first-attempt mode): the first attempt is made in both namespaces;
// the receiver answers 503. B's delivery is created and retries; A's is refused by the policy, so its attempt is
// in the ledger with outcome refused (attempt 1, 503) and the subscription says so; the batch is acknowledged.
func TestAdmissionDenialAfterAFailedFirstAttempt(t *testing.T) {
	rcv := harness.NewReceiver()
	defer rcv.Close()
	rcv.Script("/a", harness.Response{Status: 503})
	rcv.Script("/b", harness.Response{Status: 503})
	nsA, nsB := namespace(t), namespace(t)
	src, table := newOutbox(t, postgres.Options{})
	w := newLedger(t, table)
	startOperator(t, operatorConfig{flushInterval: time.Hour, ledger: w}, src)
	readySubscription(t, fixtures.Subscription(nsA, "a", rcv.URL+"/a", fixtures.InsecureHTTP()))
	readySubscription(t, fixtures.Subscription(nsB, "b", rcv.URL+"/b", fixtures.InsecureHTTP()))
	refuseDeliveriesIn(t, nsA)

	ids := insert(t, table, row{"order.created", "", "", `{"n":1}`})
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	if got := deliveries(t, nsB); fmt.Sprint(got) != fmt.Sprint([]string{"b/" + ids[0]}) {
		t.Fatalf("namespace B deliveries = %v, want b/%s", got, ids[0])
	}
	if got := deliveries(t, nsA); len(got) != 0 {
		t.Fatalf("namespace A deliveries = %v, want none", got)
	}
	var a []ledger.Attempt
	for _, r := range ledgerOf(t, w, nsA, 1) {
		if r.EventID == ids[0] {
			a = append(a, r)
		}
	}
	if len(a) != 1 || a[0].Outcome != ledger.OutcomeRefused || a[0].Number != 1 || a[0].StatusCode != 503 {
		t.Fatalf("ledger for A = %+v, want attempt 1, 503, outcome refused", a)
	}
	waitFor(t, "DeliveriesRefused=True on a", func() bool {
		c := refusedCondition(t, nsA, "a")
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == hookpostv1.ReasonAdmissionDenied
	})
	if n := len(rcv.Requests("/a")); n != 1 {
		t.Errorf("receiver a got %d requests, want 1: a refused delivery is not retried", n)
	}
}

// dispatchErrors counts the dispatches that failed, each of which hands its batch back to the source.
type dispatchErrors struct {
	next ingest.Dispatcher
	n    atomic.Int64
}

func (d *dispatchErrors) Dispatch(ctx context.Context, sub *ingest.Subscription, ev *source.Event, later ingest.Later) error {
	err := d.next.Dispatch(ctx, sub, ev, later)
	if err != nil && ctx.Err() == nil {
		d.n.Add(1)
	}
	return err
}

// TestForbiddenInOneNamespaceIsScopedAndEverywhereBlocks: the operator runs as a user that may read
// subscriptions everywhere but create deliveries only in namespace B (a RoleBinding there). Forbidden in A while
// allowed in B is a refusal scoped to A: B's deliveries are made, the batch acknowledged, A's pairs in the ledger
// as refused with reason Forbidden. When the permission is revoked in B too, the operator may create deliveries
// nowhere: B's pair is not refused, the batch waits, and once B's permission is back its event is delivered.
func TestForbiddenInOneNamespaceIsScopedAndEverywhereBlocks(t *testing.T) {
	ctx := context.Background()
	nsA, nsB := namespace(t), namespace(t)
	subscribe(t, fixtures.Subscription(nsA, "a", "https://example.com/a"), fixtures.Subscription(nsB, "b", "https://example.com/b"))
	user := fmt.Sprintf("hookpost-rbac-%d", counter.Add(1))
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	read := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user + "-read"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{hookpostv1.GroupVersion.Group}, Resources: []string{"webhooksubscriptions", "webhookdeliveries"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{hookpostv1.GroupVersion.Group}, Resources: []string{"webhooksubscriptions/status"}, Verbs: []string{"get", "patch", "update"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews"}, Verbs: []string{"create"}},
	}}
	// deliver-events is what the real-deliveries admission policy asks of whoever creates a non-test delivery.
	create := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user + "-create"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{hookpostv1.GroupVersion.Group}, Resources: []string{"webhookdeliveries"}, Verbs: []string{"create", "deliver-events"}},
	}}
	readBinding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user + "-read"}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: read.Name}}
	createInB := func() *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: user + "-create"}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: create.Name}}
	}
	for _, o := range []client.Object{read, create, readBinding, createInB()} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = cp.Client.Delete(ctx, readBinding)
		_ = cp.Client.Delete(ctx, read)
		_ = cp.Client.Delete(ctx, create)
	})
	allowedIn := func(ns string) bool {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: hookpostv1.GroupVersion.Group, Resource: "webhookdeliveries"}}}
		if err := cp.Client.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	waitFor(t, "the user allowed in B only", func() bool { return allowedIn(nsB) && !allowedIn(nsA) })

	src, table := newOutbox(t, postgres.Options{})
	w := newLedger(t, table)
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: harness.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	refusals := ingest.NewRefusals(ingest.RefusalsOptions{Client: mgr.GetClient(), Reader: mgr.GetCache(), Direct: mgr.GetAPIReader(),
		Events: mgr.GetEventRecorder("hookpost-ingest"), Ledger: w})
	d := &dispatchErrors{next: ingest.DeliveryCreator{Client: mgr.GetClient(), Refusals: refusals}}
	if err := mgr.Add(ingest.New(src, mgr.GetCache(), d, ingest.Options{BatchSize: 100, RetryDelay: 200 * time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })

	ids := insert(t, table, row{"order.created", "", "", `{"n":1}`}, row{"order.created", "", "", `{"n":2}`})
	waitFor(t, "every row done", func() bool { return pendingRows(t, table) == 0 })
	if got, want := deliveries(t, nsB), sortedCopy([]string{"b/" + ids[0], "b/" + ids[1]}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("namespace B deliveries = %v, want %v", got, want)
	}
	for _, a := range ledgerOf(t, w, nsA, 2) {
		if a.Outcome != ledger.OutcomeRefused || a.Subscription != "a" || !strings.Contains(a.Error, "forbidden") {
			t.Errorf("ledger row %+v, want a refused delivery of subscription a, Forbidden", a)
		}
	}
	waitFor(t, "DeliveriesRefused=True on a, reason Forbidden", func() bool {
		c := refusedCondition(t, nsA, "a")
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == hookpostv1.ReasonDeliveryForbidden
	})

	// Revoked in B as well: the operator may create deliveries nowhere, so the next event waits, refused nowhere.
	if err := cp.Client.Delete(ctx, createInB()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the user allowed nowhere", func() bool { return !allowedIn(nsB) })
	before := d.n.Load()
	next := insert(t, table, row{"order.created", "", "", `{"n":3}`})
	waitFor(t, "the batch handed back twice", func() bool { return d.n.Load() >= before+2 })
	if n := pendingRows(t, table); n != 1 {
		t.Fatalf("%d rows pending, want the event's: a batch Forbidden everywhere is not acknowledged", n)
	}
	if rows, err := w.Query(ctx, ledgerpg.Filter{Namespace: nsB}); err != nil || len(rows) != 0 {
		t.Fatalf("ledger rows in B %+v (%v): an event Forbidden everywhere must wait, not be refused", rows, err)
	}
	if err := cp.Client.Create(ctx, createInB()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every row done once B's permission is back", func() bool { return pendingRows(t, table) == 0 })
	if got := deliveries(t, nsB); len(got) != 3 || !slices.Contains(got, "b/"+next[0]) {
		t.Fatalf("namespace B deliveries = %v, want b/%s among 3", got, next[0])
	}
	if rows, err := w.Query(ctx, ledgerpg.Filter{Namespace: nsB}); err != nil || len(rows) != 0 {
		t.Fatalf("ledger rows in B %+v (%v), want none refused", rows, err)
	}
}
