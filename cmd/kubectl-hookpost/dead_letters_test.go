package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// failedDeliveries makes a subscription whose receiver rejects everything and n deliveries that end Failed, and
// returns the receiver and the deliveries' names.
func failedDeliveries(t *testing.T, ns, sub string, n int) (*harness.Receiver, []string) {
	t.Helper()
	recv := harness.NewReceiver()
	t.Cleanup(recv.Close)
	recv.Script("/"+sub, harness.Response{Status: http.StatusBadRequest, Body: "unknown order"})
	createReadySubscription(t, fixtures.Subscription(ns, sub, recv.URL+"/"+sub, fixtures.InsecureHTTP()))
	var names []string
	for i := range n {
		d := fixtures.Delivery(ns, sub, fmt.Sprintf("%s-evt-%d", sub, i), "order.created", map[string]int{"order_id": i}, fixtures.SealedBy(testSealer))
		if err := k8sClient.Create(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		waitForPhase(t, d, hookpostv1.DeliveryFailed)
		names = append(names, d.Name)
	}
	return recv, names
}

func TestDeadLettersListExportAndReplay(t *testing.T) {
	ns := newNamespace(t)
	recv, names := failedDeliveries(t, ns, "orders", 3)
	failedDeliveries(t, ns, "billing", 1)

	out := mustRun(t, "dead-letters", "-n", ns)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "DELIVERY") {
		t.Fatalf("table of 4 dead letters:\n%s", out)
	}
	for _, want := range []string{names[0], "orders-evt-0", "Rejected", "400", "object", "billing"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	// -o jsonl: one object per line, for the subscription asked for only.
	out = mustRun(t, "dead-letters", "-n", ns, "--subscription", "orders", "-o", "jsonl")
	var got []deadLetter
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l deadLetter
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		got = append(got, l)
	}
	if len(got) != 3 {
		t.Fatalf("jsonl has %d lines, want 3:\n%s", len(got), out)
	}
	for _, l := range got {
		if l.Subscription != "orders" || l.Source != "object" || l.EventType != "order.created" || l.Attempts != 1 ||
			l.Reason != hookpostv1.ReasonRejected || l.StatusCode != 400 || l.Time.IsZero() || !strings.HasPrefix(l.EventID, "orders-evt-") {
			t.Errorf("jsonl line %+v", l)
		}
	}

	// --replay creates a WebhookReplay of the subscription's Failed deliveries, which the operator replays.
	recv.Script("/orders") // the receiver is fixed
	out = mustRun(t, "dead-letters", "-n", ns, "--subscription", "orders", "--replay", "--rate", "50")
	name := strings.TrimPrefix(strings.Fields(out)[0], "webhookreplay/")
	if !strings.HasPrefix(name, "dead-letters-") || !strings.Contains(out, "kubectl wait --for=condition=Complete whrep/"+name) {
		t.Fatalf("dead-letters --replay output:\n%s", out)
	}
	rp := waitForReplayComplete(t, ns, name)
	if rp.Spec.Selector.SubscriptionName != "orders" || rp.Spec.Rate.PerSecond != 50 ||
		len(rp.Spec.Selector.Phases) != 1 || rp.Spec.Selector.Phases[0] != hookpostv1.DeliveryFailed {
		t.Errorf("WebhookReplay spec %+v", rp.Spec)
	}
	if rp.Status.Selected != 3 || rp.Status.Succeeded != 3 {
		t.Errorf("WebhookReplay status %+v, want 3 selected and succeeded", rp.Status)
	}
	if n := len(recv.Requests("/orders")); n != 6 {
		t.Errorf("receiver got %d requests, want 3 first attempts and 3 replays", n)
	}
	if out := mustRun(t, "dead-letters", "-n", ns, "--subscription", "orders", "-o", "jsonl"); out != "" {
		t.Errorf("dead letters left after the replay:\n%s", out)
	}
}

func TestDeadLettersFromTheLedger(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := newNamespace(t)
	_, names := failedDeliveries(t, ns, "orders", 1)

	pg := harness.StartPostgres(t)
	w, err := ledgerpg.New(ctx, ledgerpg.Options{DSN: pg.DSN()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, a := range []ledger.Attempt{
		// The row of the delivery that still has its object: listed once, from the object.
		{DeliveryName: names[0], Namespace: ns, Subscription: "orders", EventID: "orders-evt-0", EventType: "order.created",
			Number: 1, Time: now.Add(-time.Minute), StatusCode: 400, ErrorClass: "Permanent", Outcome: ledger.OutcomeFailed},
		// A delivery the history limits pruned: known only to the ledger.
		{DeliveryName: "orders-pruned", Namespace: ns, Subscription: "orders", EventID: "evt-pruned", EventType: "order.paid",
			Number: 5, Time: now.Add(-time.Hour), StatusCode: 503, ErrorClass: "Retry", Error: "HTTP 503", Outcome: ledger.OutcomeFailed},
		// Another namespace's and a succeeded one are not dead letters here.
		{DeliveryName: "elsewhere", Namespace: "other", Subscription: "orders", EventID: "evt-x", EventType: "order.paid",
			Number: 1, Time: now, Outcome: ledger.OutcomeFailed},
		{DeliveryName: "fine", Namespace: ns, Subscription: "orders", EventID: "evt-ok", EventType: "order.paid",
			Number: 1, Time: now, StatusCode: 200, Outcome: ledger.OutcomeSucceeded},
	} {
		w.Record(a)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "dead-letters", "-n", ns, "--ledger-dsn", pg.DSN(), "-o", "jsonl")
	var got []deadLetter
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l deadLetter
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, l)
	}
	if len(got) != 2 || got[0].Source != "object" || got[0].Delivery != names[0] {
		t.Fatalf("dead letters from objects and ledger:\n%s", out)
	}
	if p := got[1]; p.Source != "ledger" || p.Delivery != "orders-pruned" || p.EventID != "evt-pruned" || p.Attempts != 5 ||
		p.StatusCode != 503 || p.LastError != "HTTP 503" || !p.Time.Equal(now.Add(-time.Hour)) {
		t.Errorf("the pruned delivery's ledger row: %+v", p)
	}
}

func TestReplayCreatesAWebhookReplay(t *testing.T) {
	ns := newNamespace(t)
	recv, _ := failedDeliveries(t, ns, "orders", 2)
	recv.Script("/orders")

	var rp hookpostv1.WebhookReplay
	out := mustRun(t, "replay", "--webhookreplay", "--subscription", "orders", "--phase", "Failed", "--event-type", "order.created",
		"--tenant", "123", "--since", "1h", "--rate", "20", "--limit", "10", "-n", ns, "-o", "json")
	if err := json.Unmarshal([]byte(out), &rp); err != nil || !strings.HasPrefix(rp.Name, "replay-") {
		t.Fatalf("replay --webhookreplay -o json (%v):\n%s", err, out)
	}
	sel := rp.Spec.Selector
	if sel.SubscriptionName != "orders" || len(sel.Phases) != 1 || sel.EventTypes[0] != "order.created" || sel.Tenants[0] != "123" ||
		sel.From == nil || rp.Spec.Rate.PerSecond != 20 || rp.Spec.Limit != 10 {
		t.Errorf("WebhookReplay spec %+v", rp.Spec)
	}
	// The fixtures' events occurred in 2025, before --since 1h: nothing is selected.
	if done := waitForReplayComplete(t, ns, rp.Name); done.Status.Selected != 0 {
		t.Errorf("status %+v, want nothing selected", done.Status)
	}

	out = mustRun(t, "replay", "--webhookreplay", "--phase", "Failed", "-n", ns)
	name := strings.TrimPrefix(strings.Fields(out)[0], "webhookreplay/")
	if done := waitForReplayComplete(t, ns, name); done.Status.Selected != 2 || done.Status.Succeeded != 2 {
		t.Errorf("status %+v, want 2 selected and succeeded", done.Status)
	}

	out = mustRun(t, "replay", "--webhookreplay", "--from-source", "outbox", "--since", "1h", "--subscription", "orders", "-n", ns, "-o", "json")
	rp = hookpostv1.WebhookReplay{}
	if err := json.Unmarshal([]byte(out), &rp); err != nil {
		t.Fatalf("replay --webhookreplay --from-source -o json (%v):\n%s", err, out)
	}
	if src := rp.Spec.Source; src == nil || src.Kind != hookpostv1.ReplaySourceOutbox || time.Since(src.Since.Time) < 59*time.Minute ||
		time.Since(src.Since.Time) > 61*time.Minute || rp.Spec.Selector.From != nil || rp.Spec.Selector.SubscriptionName != "orders" {
		t.Errorf("--from-source outbox --since 1h made spec %+v, source %+v; want source Outbox since an hour ago, no selector.from", rp.Spec, rp.Spec.Source)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--webhookreplay", "--rate", "1000", "-n", ns}, "spec.rate.perSecond"},
		{[]string{"replay", "--webhookreplay", "--from-source", "kafka", "--since", "1h", "-n", ns}, "use outbox or jetstream"},
		{[]string{"replay", "--webhookreplay", "--from-source", "outbox", "-n", ns}, "add --since"},
		{[]string{"replay", "--webhookreplay", "--from-source", "jetstream", "--since", "1h", "--phase", "Failed", "-n", ns}, "drop one of them"},
		{[]string{"replay", "--subscription", "orders", "--from-source", "outbox", "-n", ns}, "add --webhookreplay"},
		{[]string{"replay", "--webhookreplay", "somedelivery", "-n", ns}, "drop the delivery name"},
		{[]string{"replay", "--subscription", "orders", "--tenant", "1", "-n", ns}, "add --webhookreplay"},
		{[]string{"dead-letters", "-o", "csv", "-n", ns}, "json, yaml or jsonl"},
	} {
		if r := run(t, "", tc.args...); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error containing %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// waitForReplayComplete waits until the WebhookReplay's Complete condition is True and returns it.
func waitForReplayComplete(t *testing.T, ns, name string) *hookpostv1.WebhookReplay {
	t.Helper()
	rp := &hookpostv1.WebhookReplay{}
	eventually(t, 30*time.Second, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rp); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(rp.Status.Conditions, hookpostv1.ConditionComplete) {
			return errors.New("replay not complete")
		}
		return nil
	})
	return rp
}
