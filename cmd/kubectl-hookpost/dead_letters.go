package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
)

type deadLettersOptions struct {
	*rootOptions
	ledgerOptions
	subscription, output string
	limit                int
	replay               bool
	rate                 int32
}

// deadLetter is one delivery that failed for good: a line of -o jsonl, an item of -o json and yaml.
type deadLetter struct {
	// Source is "object" for a Failed WebhookDelivery, "ledger" for a ledger row whose object is gone (pruned).
	// Reason is the Delivered reason of an object, the outcome class of a ledger row's last attempt.
	Source       string    `json:"source"`
	Namespace    string    `json:"namespace"`
	Subscription string    `json:"subscription"`
	Delivery     string    `json:"delivery"`
	EventID      string    `json:"eventID"`
	EventType    string    `json:"eventType"`
	TenantID     string    `json:"tenantID,omitempty"`
	Attempts     int       `json:"attempts"`
	Reason       string    `json:"reason,omitempty"`
	StatusCode   int       `json:"statusCode,omitempty"`
	LastError    string    `json:"lastError,omitempty"`
	Time         time.Time `json:"time"`
}

func newDeadLettersCommand(root *rootOptions) *cobra.Command {
	o := &deadLettersOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "dead-letters [--subscription SUBSCRIPTION]",
		Short: "List deliveries that failed for good, export them, or replay them",
		Long: `Lists the dead letters of a namespace: WebhookDeliveries in phase Failed (retries exhausted, rejected by
the receiver, gone, or a request that cannot be built), with why. With a delivery ledger (--ledger-dsn or
$HOOKPOST_LEDGER_DSN), also its rows with outcome failed whose WebhookDelivery was pruned by the
subscription's history limits (source ledger).

-o jsonl exports one JSON object per line. --replay creates a WebhookReplay that sends every Failed
WebhookDelivery of the selection again at --rate; dead letters known only to the ledger cannot be replayed,
since the ledger does not keep the event's payload (docs/operations.md, "Dead letters").`,
		Example: `  kubectl hookpost dead-letters -n shop
  kubectl hookpost dead-letters -n shop --subscription orders -o jsonl > orders-dead-letters.jsonl
  kubectl hookpost dead-letters -n shop --subscription orders --replay --rate 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context()) },
	}
	f := cmd.Flags()
	f.StringVar(&o.subscription, "subscription", "", "Only dead letters of this subscription.")
	f.IntVar(&o.limit, "limit", ledgerpg.DefaultQueryLimit, "With a ledger: read at most this many of its latest failed rows.")
	f.BoolVar(&o.replay, "replay", false, "Create a WebhookReplay that replays the Failed WebhookDeliveries instead of listing them.")
	f.Int32Var(&o.rate, "rate", hookpostv1.DefaultReplayPerSecond, "With --replay: deliveries replayed per second (spec.rate.perSecond, 1 to 100).")
	o.ledgerOptions.addFlags(f)
	addOutputFlag(cmd, &o.output, "jsonl")
	return cmd
}

func (o *deadLettersOptions) run(ctx context.Context) error {
	if err := validateOutput(o.output, "jsonl"); err != nil {
		return err
	}
	if o.limit <= 0 {
		return fmt.Errorf("--limit %d: give a positive number of ledger rows", o.limit)
	}
	c, ns, err := o.connect()
	if err != nil {
		return err
	}
	if o.replay {
		sel := hookpostv1.ReplaySelector{SubscriptionName: o.subscription, Phases: []hookpostv1.DeliveryPhase{hookpostv1.DeliveryFailed}}
		return createWebhookReplay(ctx, o.rootOptions, c, ns, "dead-letters-", hookpostv1.WebhookReplaySpec{Selector: sel, Rate: hookpostv1.ReplayRate{PerSecond: o.rate}}, o.output)
	}
	letters, err := o.fromObjects(ctx, c, ns)
	if err != nil {
		return err
	}
	if o.resolveDSN() != "" {
		pruned, err := o.fromLedger(ctx, ns, letters)
		if err != nil {
			return err
		}
		letters = append(letters, pruned...)
	}
	switch o.output {
	case "jsonl":
		return writeJSONLines(o.streams.Out, letters)
	case "json", "yaml":
		return printStructured(o.streams.Out, o.output, struct {
			DeadLetters []deadLetter `json:"deadLetters"`
		}{DeadLetters: append([]deadLetter{}, letters...)})
	}
	if len(letters) == 0 {
		fmt.Fprintf(o.streams.ErrOut, "No dead letters in namespace %s.\n", escapeText(ns))
		return nil
	}
	printDeadLetters(o.streams.Out, letters)
	return nil
}

// fromObjects lists the Failed WebhookDeliveries; phase and subscription are selectable fields, so the API server
// filters.
func (o *deadLettersOptions) fromObjects(ctx context.Context, c client.Client, ns string) ([]deadLetter, error) {
	fields := client.MatchingFields{"status.phase": string(hookpostv1.DeliveryFailed)}
	if o.subscription != "" {
		fields["spec.subscriptionName"] = o.subscription
	}
	list := &hookpostv1.WebhookDeliveryList{}
	if err := c.List(ctx, list, client.InNamespace(ns), fields); err != nil {
		return nil, fmt.Errorf("list Failed deliveries: %w", err)
	}
	out := make([]deadLetter, 0, len(list.Items))
	for _, d := range list.Items {
		l := deadLetter{
			Source: "object", Namespace: d.Namespace, Subscription: d.Spec.SubscriptionName, Delivery: d.Name,
			EventID: d.Spec.Event.ID, EventType: d.Spec.Event.Type, TenantID: d.Spec.Event.TenantID, Attempts: int(d.Status.Attempts),
		}
		if c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered); c != nil {
			l.Reason = c.Reason
		}
		if a := d.Status.LastAttempt; a != nil {
			l.StatusCode, l.LastError, l.Time = int(a.StatusCode), a.Error, a.Time.UTC()
		}
		if d.Status.CompletionTime != nil {
			l.Time = d.Status.CompletionTime.UTC()
		}
		out = append(out, l)
	}
	return out, nil
}

// fromLedger returns the ledger's failed deliveries that have no WebhookDelivery among objects any more.
func (o *deadLettersOptions) fromLedger(ctx context.Context, ns string, objects []deadLetter) ([]deadLetter, error) {
	rows, err := o.query(ctx, ledgerpg.Filter{Namespace: ns, Subscription: o.subscription, Outcome: ledger.OutcomeFailed, Limit: o.limit})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, l := range objects {
		seen[l.Delivery] = true
	}
	var out []deadLetter
	for _, a := range rows {
		if seen[a.DeliveryName] {
			continue // listed from its object; a delivery replayed and failed again has a row per failure
		}
		seen[a.DeliveryName] = true
		out = append(out, deadLetter{
			Source: "ledger", Namespace: a.Namespace, Subscription: a.Subscription, Delivery: a.DeliveryName,
			EventID: a.EventID, EventType: a.EventType, TenantID: a.TenantID, Attempts: a.Number, Reason: a.ErrorClass,
			StatusCode: a.StatusCode, LastError: a.Error, Time: a.Time,
		})
	}
	return out, nil
}

// writeJSONLines writes one compact JSON object per line, with what printStructured escapes escaped too.
func writeJSONLines[T any](w io.Writer, items []T) error {
	for _, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			return fmt.Errorf("encode jsonl: %w", err)
		}
		if _, err := w.Write(append(escapeNonPrinting(b), '\n')); err != nil {
			return err
		}
	}
	return nil
}

func printDeadLetters(w io.Writer, letters []deadLetter) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join([]string{"DELIVERY", "SUBSCRIPTION", "EVENT", "TYPE", "ATTEMPTS", "REASON", "STATUS", "ERROR", "SOURCE"}, "\t"))
	for _, l := range letters {
		status := "-"
		if l.StatusCode != 0 {
			status = strconv.Itoa(l.StatusCode)
		}
		fmt.Fprintln(tw, strings.Join([]string{cell(l.Delivery), cell(l.Subscription), cell(l.EventID), cell(l.EventType),
			strconv.Itoa(l.Attempts), cell(l.Reason), status, cell(truncate(l.LastError, errorColumnWidth)), l.Source}, "\t"))
	}
	_ = tw.Flush()
}
