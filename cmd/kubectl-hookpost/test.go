package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/filter"
)

type testOptions struct {
	*rootOptions
	event, data, tenant, collection, output string
	wait                                    bool
	timeout                                 time.Duration
}

func newTestCommand(root *rootOptions) *cobra.Command {
	o := &testOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "test SUBSCRIPTION --event TYPE",
		Short: "Send a test event to a subscription",
		Long: `Creates a WebhookDelivery of a test event for the subscription. Hookpost delivers it like any other
event, signed, with the header X-Hookpost-Test: true so the receiver can tell it apart. Prints the delivery's
name; with --wait, waits until the delivery finished and prints its outcome (exit code 1 unless it succeeded).

When the subscription has a spec.filter.expression, says on stderr whether it accepts the event (a test event
is sent either way); with spec.ordering, which ordering key the same event from a source would get (a test
event is not ordered).

Without --data the event carries built-in sample data for these types:
  ` + strings.Join(sampleTypes(), ", "),
		Example: `  kubectl hookpost test orders --event order.created --tenant 123 --wait
  kubectl hookpost test orders --event order.created --data '{"order_id":7}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args[0]) },
	}
	cmd.Flags().StringVar(&o.event, "event", "", "Event type, such as user.registered (required).")
	cmd.Flags().StringVar(&o.data, "data", "", "Event data as JSON. Default: built-in sample data for the event type.")
	cmd.Flags().StringVar(&o.tenant, "tenant", "", "Tenant id of the event, such as 123.")
	cmd.Flags().StringVar(&o.collection, "collection", "", "Collection of the event (Collection payload format).")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "Wait for the delivery to finish and print its outcome.")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 2*time.Minute, "How long --wait waits.")
	addOutputFlag(cmd, &o.output)
	_ = cmd.MarkFlagRequired("event")
	return cmd
}

func (o *testOptions) run(ctx context.Context, subscription string) error {
	if err := validateOutput(o.output); err != nil {
		return err
	}
	data, err := o.eventData()
	if err != nil {
		return err
	}
	c, ns, err := o.connect()
	if err != nil {
		return err
	}
	sub, err := getSubscription(ctx, c, ns, subscription)
	if err != nil {
		return err
	}
	d := testDelivery(sub, o.event, o.tenant, o.collection, data, uuid.NewString(), time.Now())
	for _, note := range []string{filterNote(sub, d), orderingNote(sub, d)} {
		if note != "" {
			fmt.Fprintln(o.streams.ErrOut, note)
		}
	}
	if err := controllerutil.SetOwnerReference(sub, d, scheme); err != nil {
		return fmt.Errorf("set owner reference: %w", err)
	}
	if err := c.Create(ctx, d); err != nil {
		return fmt.Errorf("create WebhookDelivery: %w", err)
	}
	if o.output == "" {
		fmt.Fprintln(o.streams.Out, d.Name)
	}
	if !o.wait {
		if o.output != "" {
			return printStructured(o.streams.Out, o.output, d)
		}
		return nil
	}

	finished := false
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, o.timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return false, fmt.Errorf("get WebhookDelivery %s: %w", d.Name, err)
		}
		finished = d.Status.Phase.Finished()
		return finished, nil
	})
	if err != nil && !wait.Interrupted(err) {
		return err
	}
	if o.output != "" {
		if err := printStructured(o.streams.Out, o.output, d); err != nil {
			return err
		}
	} else {
		printOutcome(o.streams.Out, d)
	}
	if !finished {
		return fmt.Errorf("delivery %s did not finish within %s", d.Name, o.timeout)
	}
	if d.Status.Phase != hookpostv1.DeliverySucceeded {
		return exitError{code: 1}
	}
	return nil
}

// eventData is --data, checked to be JSON, or the sample for the event type.
func (o *testOptions) eventData() ([]byte, error) {
	if o.data == "" {
		sample, ok := sampleData[o.event]
		if !ok {
			return nil, fmt.Errorf("no built-in sample data for event type %q: pass --data, or use one of %s", o.event, strings.Join(sampleTypes(), ", "))
		}
		return []byte(sample), nil
	}
	if !json.Valid([]byte(o.data)) {
		return nil, fmt.Errorf("--data is not valid JSON")
	}
	return []byte(o.data), nil
}

// testDelivery is the WebhookDelivery of a test event, named as ingest names every delivery.
func testDelivery(sub *hookpostv1.WebhookSubscription, eventType, tenant, collection string, data []byte, eventID string, now time.Time) *hookpostv1.WebhookDelivery {
	labels := map[string]string{hookpostv1.LabelTest: "true"}
	if v := hookpostv1.SubscriptionLabelValue(sub.Name); v != "" {
		labels[hookpostv1.LabelSubscription] = v
	}
	if v := hookpostv1.EventTypeLabelValue(eventType); v != "" {
		labels[hookpostv1.LabelEventType] = v
	}
	return &hookpostv1.WebhookDelivery{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: sub.Namespace,
			Name:      hookpostv1.DeliveryName(sub.Name, eventID),
			Labels:    labels,
		},
		Spec: hookpostv1.WebhookDeliverySpec{
			SubscriptionName: sub.Name,
			Event: hookpostv1.EventMeta{
				ID:         eventID,
				Type:       eventType,
				TenantID:   tenant,
				Collection: collection,
				// The API stores seconds; truncating here keeps the object and the body's timestamp equal.
				OccurredAt: metav1.NewTime(now.UTC().Truncate(time.Second)),
			},
			Data: &apiextensionsv1.JSON{Raw: data},
			Test: true,
		},
	}
}

// filterNote says whether the subscription's spec.filter.expression accepts the test delivery's event, "" when it
// has none. A test event is sent whatever the filter says (it is not matched, see docs/subscriptions.md); the
// note tells whether the same event from a source would be delivered.
func filterNote(sub *hookpostv1.WebhookSubscription, d *hookpostv1.WebhookDelivery) string {
	if sub.Spec.Filter == nil || sub.Spec.Filter.Expression == "" {
		return ""
	}
	const sent = "the test event is sent anyway"
	p, err := filter.Compile(sub.Spec.Filter.Expression)
	if err != nil {
		return fmt.Sprintf("Note: spec.filter.expression does not compile, so no event from a source is delivered; %s:\n%v", sent, err)
	}
	ok, err := p.Match(filterEvent(d))
	switch {
	case err != nil:
		// The data is the user's own (--data or the sample), so CEL's message may quote it.
		return fmt.Sprintf("Note: spec.filter.expression cannot decide this event (%v), so from a source it would not be delivered; %s.", err, sent)
	case !ok:
		return fmt.Sprintf("Note: spec.filter.expression is false for this event, so from a source it would not be delivered; %s.", sent)
	}
	return "spec.filter.expression accepts this event."
}

// filterEvent is what a filter or an ordering key sees of the test delivery's event.
func filterEvent(d *hookpostv1.WebhookDelivery) *filter.Event {
	ev := d.Spec.Event
	return &filter.Event{Type: ev.Type, Tenant: ev.TenantID, Collection: ev.Collection, Time: ev.OccurredAt.Time, Data: d.Spec.Data.Raw}
}

// orderingNote says which key the subscription's spec.ordering.key gives the test delivery's event, "" when it
// orders nothing. A test event is sent at once, outside its key's sequence (docs/subscriptions.md, Ordered
// delivery); the note tells what the same event from a source would wait for.
func orderingNote(sub *hookpostv1.WebhookSubscription, d *hookpostv1.WebhookDelivery) string {
	if sub.Spec.Ordering == nil {
		return ""
	}
	const sent = "the test event is sent at once, outside that key's order"
	p, err := filter.CompileKey(sub.Spec.Ordering.Key)
	if err != nil {
		return fmt.Sprintf("Note: spec.ordering.key does not compile, so events from a source are ordered under the key \"\"; %s:\n%v", sent, err)
	}
	key, err := p.Key(filterEvent(d))
	if err != nil {
		return fmt.Sprintf("Note: spec.ordering.key cannot key this event (%v), so from a source it would be ordered under the key \"\"; %s.", err, sent)
	}
	return fmt.Sprintf("spec.ordering.key gives this event the key %q; %s.", key, sent)
}

// printOutcome prints a finished (or still waiting) delivery's phase and last attempt as a table, with the
// Delivered condition's message when the delivery did not succeed.
func printOutcome(w io.Writer, d *hookpostv1.WebhookDelivery) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tATTEMPTS\tCODE\tERROR")
	code, errText := "-", ""
	if last := d.Status.LastAttempt; last != nil {
		if last.StatusCode != 0 {
			code = fmt.Sprint(last.StatusCode)
		}
		errText = last.Error
	}
	phase := string(d.Status.Phase)
	if phase == "" {
		phase = string(hookpostv1.DeliveryPending)
	}
	fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", phase, d.Status.Attempts, code, errText)
	_ = tw.Flush()
	if d.Status.Phase != hookpostv1.DeliverySucceeded {
		if c := meta.FindStatusCondition(d.Status.Conditions, hookpostv1.ConditionDelivered); c != nil {
			fmt.Fprintf(w, "%s: %s\n", c.Reason, c.Message)
		}
	}
}
