package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

type replayOptions struct {
	*rootOptions
	subscription, phase, output string
	since                       time.Duration
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
		Use:   "replay [DELIVERY | --subscription SUBSCRIPTION]",
		Short: "Send deliveries again",
		Long: `Sets the webhooks.hookpost.io/replay annotation of one delivery, or of every delivery of a subscription
that passes the filters, to a new value. Hookpost then sends each again, whatever its phase, restarting the
retry schedule and keeping the attempt history, within the operator's replay limits (condition ReplayDeferred
says until when a replay waits). Reports how many deliveries a replay was requested for.`,
		Example: `  kubectl hookpost replay orders-3f2a9c0e1d
  kubectl hookpost replay --subscription orders --phase Failed --since 2h`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args) },
	}
	cmd.Flags().StringVar(&o.subscription, "subscription", "", "Replay the deliveries of this subscription.")
	cmd.Flags().StringVar(&o.phase, "phase", "", "With --subscription: only deliveries in this phase (Pending, Retrying, Succeeded or Failed).")
	cmd.Flags().DurationVar(&o.since, "since", 0, "With --subscription: only deliveries created within this long, such as 2h.")
	addOutputFlag(cmd, &o.output)
	return cmd
}

func (o *replayOptions) run(ctx context.Context, args []string) error {
	if (len(args) == 1) == (o.subscription != "") {
		return errors.New("name one delivery, or pass --subscription to replay a subscription's deliveries")
	}
	if len(args) == 1 && (o.phase != "" || o.since != 0) {
		return errors.New("--phase and --since filter --subscription's deliveries; a named delivery is replayed as it is")
	}
	if err := validateOutput(o.output); err != nil {
		return err
	}
	switch hookpostv1.DeliveryPhase(o.phase) {
	case "", hookpostv1.DeliveryPending, hookpostv1.DeliveryRetrying, hookpostv1.DeliverySucceeded, hookpostv1.DeliveryFailed:
	default:
		return fmt.Errorf("--phase %q is not a phase: use Pending, Retrying, Succeeded or Failed", o.phase)
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

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
