package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

// result is what the run counted.
type result struct {
	seed      int64
	published int
	outbox    map[string]int // outbox rows by status
	receipts
	objects       int // WebhookDelivery objects at the end
	dupObjects    int // (subscription, event) pairs with more than one object
	unfinished    int // objects neither Succeeded nor a first attempt that succeeded
	ledgerMissing int // published events without a succeeded row in the ledger
	kills         int
	selfExits     int
	restarts      []string
	lastFault     time.Time
	drain         time.Duration // from the end of the last fault to the last event's first 2xx
	// settled is from the end of the last fault until the sources were drained and no delivery was unfinished
	// (as polled, every 2s); 0 when that never happened.
	settled      time.Duration
	ledgerSample []string
}

// passed is the run's verdict: nothing lost, no pair with two objects.
func (r result) passed() bool { return r.published > 0 && len(r.lost) == 0 && r.dupObjects == 0 }

func isReady(s *hookpostv1.WebhookSubscription) bool {
	return meta.IsStatusConditionTrue(s.Status.Conditions, hookpostv1.ConditionReady)
}

func clientKey(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace, Name: name}
}

// waitDrained waits until every published event got a 2xx, both sources have nothing left to hand over and no
// delivery is unfinished, so the duplicate counts that follow are final.
func waitDrained(ctx context.Context, timeout time.Duration, recv *receiver, published []string, pool *pgxpool.Pool,
	js jetstream.JetStream, cp *harness.ControlPlane) (bool, string) {
	deadline := time.Now().Add(timeout)
	nextProgress := time.Now().Add(30 * time.Second)
	var why string
	for time.Now().Before(deadline) {
		why = notDrained(ctx, recv, published, pool, js, cp)
		if why == "" {
			return true, ""
		}
		if time.Now().After(nextProgress) {
			step("  still draining: " + why)
			nextProgress = time.Now().Add(30 * time.Second)
		}
		if !harness.SleepUntil(ctx, time.Now().Add(2*time.Second)) {
			return false, ctx.Err().Error()
		}
	}
	return false, why
}

// notDrained says what is left to do, or "" when nothing is.
func notDrained(ctx context.Context, recv *receiver, published []string, pool *pgxpool.Pool, js jetstream.JetStream,
	cp *harness.ControlPlane) string {
	if n := recv.deliveredCount(published); n < len(published) {
		return fmt.Sprintf("%d of %d events delivered", n, len(published))
	}
	counts, err := harness.OutboxStatusCounts(ctx, pool)
	if err != nil {
		return err.Error()
	}
	if counts["pending"] > 0 {
		return fmt.Sprintf("outbox rows by status %v", counts)
	}
	if ok, state := harness.ConsumerDrained(ctx, js); !ok {
		return "NATS consumer " + state
	}
	unfinished := &metav1.PartialObjectMetadataList{}
	unfinished.SetGroupVersionKind(hookpostv1.GroupVersion.WithKind("WebhookDeliveryList"))
	if err := cp.Client.List(ctx, unfinished, client.InNamespace(namespace), client.Limit(500),
		client.MatchingFieldsSelector{Selector: fields.OneTermNotEqualSelector("status.phase", string(hookpostv1.DeliverySucceeded))}); err != nil {
		return fmt.Sprintf("list unfinished deliveries: %v", err)
	}
	for _, d := range unfinished.Items {
		if !succeededFirstAttempt(d.Annotations) {
			return "deliveries not Succeeded, such as " + d.Name
		}
	}
	return ""
}

// succeededFirstAttempt reports whether a delivery was written for a first attempt that succeeded: the delivery
// controller makes it Succeeded without sending anything.
func succeededFirstAttempt(annotations map[string]string) bool {
	first, err := controller.DecodeFirstAttempt(annotations[hookpostv1.AnnotationFirstAttempt])
	return err == nil && first.Class == delivery.ClassSucceeded
}

// count gathers the report once the operator has stopped.
func count(ctx context.Context, cfg config, recv *receiver, published []string, pool *pgxpool.Pool,
	cp *harness.ControlPlane, f *faults, lastFault time.Time) (result, error) {
	r := result{seed: cfg.seed, published: len(published), receipts: recv.receipts(published), lastFault: lastFault}
	var err error
	if r.outbox, err = harness.OutboxStatusCounts(ctx, pool); err != nil {
		return r, err
	}
	if len(r.lost) == 0 && r.lastFirst.After(lastFault) {
		r.drain = r.lastFirst.Sub(lastFault)
	}
	f.mu.Lock()
	r.kills, r.selfExits, r.restarts = f.kills, f.selfExits, f.restarts
	f.mu.Unlock()

	perPair := map[string]int{}
	list := &hookpostv1.WebhookDeliveryList{}
	for {
		if err := cp.Client.List(ctx, list, client.InNamespace(namespace), client.Limit(500), client.Continue(list.Continue)); err != nil {
			return r, fmt.Errorf("list deliveries: %w", err)
		}
		for _, d := range list.Items {
			r.objects++
			perPair[d.Spec.SubscriptionName+"/"+d.Spec.Event.ID]++
			if d.Status.Phase != hookpostv1.DeliverySucceeded && !succeededFirstAttempt(d.Annotations) {
				r.unfinished++
			}
		}
		if list.Continue == "" {
			break
		}
	}
	for _, n := range perPair {
		if n > 1 {
			r.dupObjects++
		}
	}

	rows, err := pool.Query(ctx, "SELECT DISTINCT event_id FROM "+ledgerpg.DefaultTable+
		" WHERE namespace = $1 AND subscription = $2 AND outcome = 'succeeded'", namespace, subscription)
	if err != nil {
		return r, fmt.Errorf("read the ledger: %w", err)
	}
	inLedger := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return r, fmt.Errorf("read the ledger: %w", err)
		}
		inLedger[id] = true
	}
	rows.Close()
	for _, id := range published {
		if !inLedger[id] {
			r.ledgerMissing++
			if len(r.ledgerSample) < 5 {
				r.ledgerSample = append(r.ledgerSample, id)
			}
		}
	}
	return r, rows.Err()
}

func (r result) print(out io.Writer) {
	fmt.Fprintf(out, "\nChaos report (seed %d)\n", r.seed)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "FAIL"
	}
	var answers []string
	for f := answerOK; f < faultKinds; f++ {
		answers = append(answers, fmt.Sprintf("%s %d", faultNames[f], r.answered[f]))
	}
	drain, settled := "-", "-"
	if len(r.lost) == 0 {
		drain = r.drain.Round(100 * time.Millisecond).String()
	}
	if r.settled > 0 {
		settled = r.settled.Round(time.Second).String()
	}
	rowsf := [][2]string{
		{"events published", fmt.Sprintf("%d (outbox rows by status %v, NATS %d)", r.published, r.outbox, r.published-r.published/2)},
		{"delivered (2xx at the receiver)", fmt.Sprint(r.delivered)},
		{"lost (published, never 2xx)", fmt.Sprintf("%d  %s", len(r.lost), verdict(len(r.lost) == 0))},
		{"duplicate WebhookDelivery objects", fmt.Sprintf("%d  %s  (pairs with more than one, of %d objects)", r.dupObjects, verdict(r.dupObjects == 0), r.objects)},
		{"duplicate POSTs (2xx again, same event id)", fmt.Sprintf("%d extra 2xx for %d events", r.dupPOSTs, r.dupEvents)},
		{"time to drain after the last fault", drain + " (every event's first 2xx); settled (sources drained, no delivery unfinished) after " + settled},
		{"receiver requests", fmt.Sprintf("%d: %s", r.requests, strings.Join(answers, ", "))},
		{"faults", fmt.Sprintf("%d operator SIGKILLs, %d exits on its own; %s", r.kills, r.selfExits, strings.Join(r.restarts, "; "))},
		{"unfinished deliveries at the end", fmt.Sprint(r.unfinished)},
		{"events without a ledger success row", fmt.Sprintf("%d %s", r.ledgerMissing, strings.Join(r.ledgerSample, " "))},
		{"event ids never published", fmt.Sprint(r.unexpected)},
	}
	for _, row := range rowsf {
		fmt.Fprintf(w, "  %s\t%s\n", row[0], row[1])
	}
	_ = w.Flush()
	if len(r.lost) > 0 {
		fmt.Fprintf(out, "Lost events, first ones: %s\n", strings.Join(r.lost[:min(len(r.lost), 10)], ", "))
	}
	fmt.Fprintf(out, "Result: %s\n", map[bool]string{true: "PASS", false: "FAIL"}[r.passed()])
}
