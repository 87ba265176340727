package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

type replayOptions struct {
	*rootOptions
	subscription, phase, output string
	since                       time.Duration
	// webhookReplay and the fields after it: create a WebhookReplay instead of annotating each delivery now.
	webhookReplay       bool
	rate, limit         int32
	eventTypes, tenants []string
	// fromSource re-reads a source (Outbox or JetStream) since --since instead of selecting deliveries.
	fromSource string
}

// replayResult is replay's -o form.
type replayResult struct {
	// Replay is the annotation value set on every delivery of this run.
	Replay   string   `json:"replay"`
	Replayed []string `json:"replayed"`
	Count    int      `json:"count"`
}

func newReplayCommand(root *rootOptions) *cobra.Command {
	o := &replayOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "replay [DELIVERY | --subscription SUBSCRIPTION | --webhookreplay]",
		Short: "Send deliveries again",
		Long: `Sets the webhooks.hookpost.io/replay annotation of one delivery, or of every delivery of a subscription
that passes the filters, to a new value. Hookpost then sends each again, whatever its phase, restarting the
retry schedule and keeping the attempt history, within the operator's replay limits (condition ReplayDeferred
says until when a replay waits). Reports how many deliveries a replay was requested for.

With --webhookreplay, creates a WebhookReplay instead: the operator replays the selection at --rate
(not held to the per-subscription replay limits), and its status counts selected, sent, succeeded and
failed deliveries until its Complete condition is True. --subscription is then optional (every
subscription of the namespace), and --since is over the events' time. This is the way to replay in bulk.
Without --from-source it selects the namespace's deliveries, and, when the operator has a ledger, those
pruned by the history limits too.

With --webhookreplay --from-source outbox|jetstream, the WebhookReplay re-reads that source instead: every
event it took in within --since (outbox rows Hookpost processed, stream messages stored) is matched against
the namespace's subscriptions (--subscription: that one) as ingest matches events, and sent again to each it
matches, as a real event; a match whose delivery object exists is replayed, one without is made.`,
		Example: `  kubectl hookpost replay orders-3f2a9c0e1d
  kubectl hookpost replay --subscription orders --phase Failed --since 2h
  kubectl hookpost replay --webhookreplay --subscription orders --phase Failed --event-type order.created --rate 20
  kubectl hookpost replay --webhookreplay --from-source outbox --since 2h --subscription orders`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args) },
	}
	cmd.Flags().StringVar(&o.subscription, "subscription", "", "Replay the deliveries of this subscription.")
	cmd.Flags().StringVar(&o.phase, "phase", "", "With --subscription: only deliveries in this phase (Pending, Retrying, Succeeded or Failed).")
	cmd.Flags().DurationVar(&o.since, "since", 0, "With --subscription: only deliveries created within this long, such as 2h.")
	cmd.Flags().BoolVar(&o.webhookReplay, "webhookreplay", false, "Create a WebhookReplay that replays the selection at --rate.")
	cmd.Flags().Int32Var(&o.rate, "rate", hookpostv1.DefaultReplayPerSecond, "With --webhookreplay: deliveries replayed per second (1 to 100).")
	cmd.Flags().Int32Var(&o.limit, "limit", hookpostv1.DefaultReplayLimit, "With --webhookreplay: replay at most this many deliveries, those with the oldest events (1 to 10000).")
	cmd.Flags().StringSliceVar(&o.eventTypes, "event-type", nil, "With --webhookreplay: only deliveries of these event types.")
	cmd.Flags().StringSliceVar(&o.tenants, "tenant", nil, "With --webhookreplay: only deliveries of events of these tenants.")
	cmd.Flags().StringVar(&o.fromSource, "from-source", "", "With --webhookreplay: re-read this source (outbox or jetstream) from --since ago instead of selecting deliveries.")
	addOutputFlag(cmd, &o.output)
	return cmd
}

func (o *replayOptions) run(ctx context.Context, args []string) error {
	if o.webhookReplay {
		return o.runWebhookReplay(ctx, args)
	}
	if len(o.eventTypes) > 0 || len(o.tenants) > 0 || o.fromSource != "" {
		return errors.New("--event-type, --tenant and --from-source select what a WebhookReplay replays: add --webhookreplay")
	}
	if (len(args) == 1) == (o.subscription != "") {
		return errors.New("name one delivery, or pass --subscription to replay a subscription's deliveries")
	}
	if len(args) == 1 && (o.phase != "" || o.since != 0) {
		return errors.New("--phase and --since filter --subscription's deliveries; a named delivery is replayed as it is")
	}
	if err := validateOutput(o.output); err != nil {
		return err
	}
	if err := validatePhase(o.phase); err != nil {
		return err
	}
	c, ns, err := o.connect()
	if err != nil {
		return err
	}

	var targets []hookpostv1.WebhookDelivery
	if len(args) == 1 {
		d := hookpostv1.WebhookDelivery{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: args[0]}, &d); err != nil {
			return fmt.Errorf("get WebhookDelivery %s/%s: %w", ns, args[0], err)
		}
		targets = append(targets, d)
	} else {
		if targets, err = o.list(ctx, c, ns); err != nil {
			return err
		}
	}

	// One value for the whole run, so the deliveries of one replay can be recognised together.
	value := time.Now().UTC().Format(time.RFC3339Nano)
	result := replayResult{Replay: value, Replayed: []string{}}
	replayed := 0
	for i := range targets {
		d := &targets[i]
		patch := client.MergeFrom(d.DeepCopy())
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[hookpostv1.AnnotationReplay] = value
		if err := c.Patch(ctx, d, patch); err != nil {
			return fmt.Errorf("replay WebhookDelivery %s (%d of %d replayed): %w", d.Name, replayed, len(targets), err)
		}
		replayed++
		result.Replayed = append(result.Replayed, d.Name)
		if o.output == "" {
			fmt.Fprintf(o.streams.Out, "webhookdelivery/%s replay requested\n", d.Name)
		}
	}
	result.Count = replayed
	if o.output != "" {
		return printStructured(o.streams.Out, o.output, result)
	}
	// The operator sends each within its replay limits, so "requested" is what is true now.
	fmt.Fprintf(o.streams.Out, "%d %s: replay requested\n", replayed, plural(replayed, "delivery", "deliveries"))
	if replayed > 0 {
		fmt.Fprintln(o.streams.Out, "Each is sent within the operator's replay limits; a delivery whose replay waits has condition ReplayDeferred saying until when.")
	}
	return nil
}

// list returns the subscription's deliveries that pass --phase and --since. The subscription and phase are
// selectable fields, so the API server does the filtering.
func (o *replayOptions) list(ctx context.Context, c client.Client, ns string) ([]hookpostv1.WebhookDelivery, error) {
	fields := client.MatchingFields{"spec.subscriptionName": o.subscription}
	if o.phase != "" {
		fields["status.phase"] = o.phase
	}
	list := &hookpostv1.WebhookDeliveryList{}
	if err := c.List(ctx, list, client.InNamespace(ns), fields); err != nil {
		return nil, fmt.Errorf("list deliveries of subscription %s: %w", o.subscription, err)
	}
	if o.since == 0 {
		return list.Items, nil
	}
	cutoff := time.Now().Add(-o.since)
	var out []hookpostv1.WebhookDelivery
	for _, d := range list.Items {
		if !d.CreationTimestamp.Time.Before(cutoff) {
			out = append(out, d)
		}
	}
	return out, nil
}

// runWebhookReplay creates a WebhookReplay selecting what the flags say.
func (o *replayOptions) runWebhookReplay(ctx context.Context, args []string) error {
	if len(args) == 1 {
		return errors.New("--webhookreplay replays a selection: drop the delivery name, or drop --webhookreplay to replay that one delivery")
	}
	if err := validateOutput(o.output); err != nil {
		return err
	}
	if err := validatePhase(o.phase); err != nil {
		return err
	}
	sel := hookpostv1.ReplaySelector{SubscriptionName: o.subscription, EventTypes: o.eventTypes, Tenants: o.tenants}
	if o.phase != "" {
		sel.Phases = []hookpostv1.DeliveryPhase{hookpostv1.DeliveryPhase(o.phase)}
	}
	src, err := o.source()
	if err != nil {
		return err
	}
	if o.since > 0 && src == nil {
		sel.From = &metav1.Time{Time: time.Now().Add(-o.since).UTC().Truncate(time.Second)}
	}
	c, ns, err := o.connect()
	if err != nil {
		return err
	}
	return createWebhookReplay(ctx, o.rootOptions, c, ns, "replay-", hookpostv1.WebhookReplaySpec{Selector: sel, Source: src,
		Rate: hookpostv1.ReplayRate{PerSecond: o.rate}, Limit: o.limit}, o.output)
}

// source is spec.source for --from-source and --since; nil without --from-source.
func (o *replayOptions) source() (*hookpostv1.ReplaySource, error) {
	if o.fromSource == "" {
		return nil, nil
	}
	var kind hookpostv1.ReplaySourceKind
	switch strings.ToLower(o.fromSource) {
	case "outbox":
		kind = hookpostv1.ReplaySourceOutbox
	case "jetstream":
		kind = hookpostv1.ReplaySourceJetStream
	default:
		return nil, fmt.Errorf("--from-source %q is not a source: use outbox or jetstream", o.fromSource)
	}
	if o.since <= 0 {
		return nil, errors.New("--from-source re-reads a source from a point in time: add --since, such as --since 2h")
	}
	if o.phase != "" {
		return nil, errors.New("--phase selects deliveries by how they ended, and --from-source re-reads events: drop one of them")
	}
	return &hookpostv1.ReplaySource{Kind: kind, Since: metav1.NewTime(time.Now().Add(-o.since).UTC().Truncate(time.Second))}, nil
}

func validatePhase(phase string) error {
	switch hookpostv1.DeliveryPhase(phase) {
	case "", hookpostv1.DeliveryPending, hookpostv1.DeliveryRetrying, hookpostv1.DeliverySucceeded, hookpostv1.DeliveryFailed:
		return nil
	}
	return fmt.Errorf("--phase %q is not a phase: use Pending, Retrying, Succeeded or Failed", phase)
}

// createWebhookReplay creates a WebhookReplay named generateName plus a random suffix, and says how to follow it.
// A zero limit takes the API's default. The API server checks the bounds and answers with the field and the fix.
func createWebhookReplay(ctx context.Context, o *rootOptions, c client.Client, ns, generateName string, spec hookpostv1.WebhookReplaySpec, output string) error {
	rp := &hookpostv1.WebhookReplay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: generateName},
		Spec:       spec,
	}
	if err := c.Create(ctx, rp); err != nil {
		return fmt.Errorf("create WebhookReplay in namespace %s: %w", ns, err)
	}
	if output != "" {
		return printStructured(o.streams.Out, output, rp)
	}
	fmt.Fprintf(o.streams.Out, "webhookreplay/%s created\n", rp.Name)
	fmt.Fprintf(o.streams.Out, "Follow it with: kubectl get whrep %s -n %s -w; wait for it with: kubectl wait --for=condition=Complete whrep/%s -n %s\n", rp.Name, ns, rp.Name, ns)
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
