package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/signing"
	"github.com/hookpost/hookpost/internal/version"
)

type inspectOptions struct {
	*rootOptions
	output string
}

func newInspectCommand(root *rootOptions) *cobra.Command {
	o := &inspectOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "inspect DELIVERY",
		Short: "Show the exact request a delivery sends and every attempt's response",
		Long: `Shows the request Hookpost sends for a delivery, byte for byte: method, URL, every header including the
signature, and the body, built by the same code the operator sends with. Each attempt is signed at its own
time, so the request is shown as the next attempt would be sent now: X-Hookpost-Attempt, and with
StandardWebhooks webhook-timestamp and webhook-signature, differ per attempt; the body, X-Event-Id and an
HMACSHA256Hex signature are the same on every attempt. User-Agent carries this plugin's version, which may
differ from the operator's.

Then lists every recorded attempt (status.history): number, time, duration, status code, error and the
receiver's response body.`,
		Example: `  kubectl hookpost inspect orders-3f2a9c0e1d
  kubectl hookpost inspect orders-3f2a9c0e1d -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args[0]) },
	}
	addOutputFlag(cmd, &o.output)
	return cmd
}

// inspection is inspect's result; its JSON form is -o json.
type inspection struct {
	Delivery     string                     `json:"delivery"`
	Namespace    string                     `json:"namespace"`
	Subscription string                     `json:"subscription"`
	Event        hookpostv1.EventMeta       `json:"event"`
	Test         bool                       `json:"test,omitempty"`
	Phase        hookpostv1.DeliveryPhase   `json:"phase,omitempty"`
	Attempts     int32                      `json:"attempts"`
	Request      *inspectedRequest          `json:"request,omitempty"`
	RequestError string                     `json:"requestError,omitempty"`
	History      []hookpostv1.AttemptRecord `json:"history"`
	// AttemptsNotInHistory counts the older attempts the delivery's status no longer holds.
	AttemptsNotInHistory int32 `json:"attemptsNotInHistory,omitempty"`
}

// inspectedRequest is the request as attempt Attempt would send it at SignedAt.
type inspectedRequest struct {
	Attempt  int       `json:"attempt"`
	SignedAt time.Time `json:"signedAt"`
	// Scheme is spec.signing.scheme; AdditionalSchemes are those of spec.signing.additional, also signed.
	Scheme            string      `json:"scheme"`
	AdditionalSchemes []string    `json:"additionalSchemes,omitempty"`
	Method            string      `json:"method"`
	URL               string      `json:"url"`
	Headers           http.Header `json:"headers"`
	// Body is the body's bytes; they are JSON, so the string holds them exactly.
	Body string `json:"body"`
	// TLS names the client certificate and CA bundle the connection uses (spec.tls); empty for none.
	TLS string `json:"tls,omitempty"`
}

func (o *inspectOptions) run(ctx context.Context, name string) error {
	if err := validateOutput(o.output); err != nil {
		return err
	}
	c, ns, err := o.connect()
	if err != nil {
		return err
	}
	d := &hookpostv1.WebhookDelivery{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return fmt.Errorf("get WebhookDelivery %s/%s: %w", ns, name, err)
	}
	in := inspection{
		Delivery: d.Name, Namespace: d.Namespace, Subscription: d.Spec.SubscriptionName, Event: d.Spec.Event,
		Test: d.Spec.Test, Phase: d.Status.Phase, Attempts: d.Status.Attempts, History: d.Status.History,
		AttemptsNotInHistory: d.Status.AttemptsNotInHistory,
	}
	if in.History == nil {
		in.History = []hookpostv1.AttemptRecord{}
	}
	req, err := buildRequest(ctx, c, d, time.Now())
	if err != nil {
		in.RequestError = err.Error()
	} else {
		in.Request = req
	}
	if o.output != "" {
		return printStructured(o.streams.Out, o.output, in)
	}
	printInspection(o.streams.Out, in)
	return nil
}

// buildRequest builds the delivery's next request as the operator would send it at now.
func buildRequest(ctx context.Context, c client.Client, d *hookpostv1.WebhookDelivery, now time.Time) (*inspectedRequest, error) {
	sub := &hookpostv1.WebhookSubscription{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: d.Spec.SubscriptionName}, sub); err != nil {
		return nil, fmt.Errorf("cannot build the request: get WebhookSubscription %s: %w", d.Spec.SubscriptionName, err)
	}
	keys, err := signingKeys(ctx, c, sub, now)
	if err != nil {
		return nil, fmt.Errorf("cannot build the request: %w", err)
	}
	// The namespace's reach decides where a request may go, not its bytes: inspect needs no namespace access.
	att := controller.AttemptFor(d, sub, nil, keys, now)
	r, err := delivery.BuildRequest(att, version.UserAgent())
	if err != nil {
		return nil, fmt.Errorf("cannot build the request: %w", err)
	}
	in := &inspectedRequest{
		Attempt: att.Number, SignedAt: now.UTC().Truncate(time.Second), Scheme: string(att.Signatures[0].Scheme),
		Method: r.Method, URL: r.URL, Headers: r.Header, Body: string(r.Body), TLS: controller.TLSSummary(sub.Spec.TLS),
	}
	for _, s := range att.Signatures[1:] {
		in.AdditionalSchemes = append(in.AdditionalSchemes, string(s.Scheme))
	}
	return in, nil
}

func printInspection(w io.Writer, in inspection) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Delivery:\t%s\n", in.Delivery)
	fmt.Fprintf(tw, "Namespace:\t%s\n", in.Namespace)
	fmt.Fprintf(tw, "Subscription:\t%s\n", in.Subscription)
	// Event attributes come from producers: printed escaped, so none can drive the terminal.
	fmt.Fprintf(tw, "Event:\t%s\n", escapeText(in.Event.Type))
	fmt.Fprintf(tw, "Event ID:\t%s\n", escapeText(in.Event.ID))
	if in.Event.TenantID != "" {
		fmt.Fprintf(tw, "Tenant:\t%s\n", escapeText(in.Event.TenantID))
	}
	if in.Event.Collection != "" {
		fmt.Fprintf(tw, "Collection:\t%s\n", escapeText(in.Event.Collection))
	}
	fmt.Fprintf(tw, "Occurred At:\t%s\n", in.Event.OccurredAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Test:\t%t\n", in.Test)
	fmt.Fprintf(tw, "Phase:\t%s\n", orDefault(in.Phase, hookpostv1.DeliveryPending))
	fmt.Fprintf(tw, "Attempts:\t%d\n", in.Attempts)
	_ = tw.Flush()

	fmt.Fprintln(w)
	if in.Request == nil {
		fmt.Fprintf(w, "Request: %s\n", escapeText(in.RequestError))
	} else {
		r := in.Request
		varies := "X-Hookpost-Attempt"
		if r.Scheme == string(signing.SchemeStandardWebhooks) || slices.Contains(r.AdditionalSchemes, string(signing.SchemeStandardWebhooks)) {
			varies += ", webhook-timestamp and webhook-signature"
		}
		fmt.Fprintf(w, "Request, as attempt %d would send it now (%s). Each attempt signs at its own time: %s differ per attempt.\n",
			r.Attempt, r.SignedAt.Format(time.RFC3339), varies)
		if r.TLS != "" {
			fmt.Fprintf(w, "Connection (spec.tls): %s.\n", r.TLS)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%s %s\n", r.Method, r.URL)
		names := make([]string, 0, len(r.Headers))
		for k := range r.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			for _, v := range r.Headers[k] {
				fmt.Fprintf(w, "%s: %s\n", k, v)
			}
		}
		fmt.Fprintln(w)
		// The body exactly as sent, then a newline that is not part of it.
		fmt.Fprintln(w, r.Body)
	}

	fmt.Fprintln(w)
	if len(in.History) == 0 {
		fmt.Fprintln(w, "History: no attempts yet")
		return
	}
	if in.AttemptsNotInHistory > 0 {
		// Status keeps the last attempts only; the ledger, when the operator has one, has them all.
		fmt.Fprintf(w, "History: the last %d of %d attempts; the %d older ones are in the delivery ledger: kubectl hookpost history --event %s\n",
			len(in.History), in.Attempts, in.AttemptsNotInHistory, escapeText(in.Event.ID))
	} else {
		fmt.Fprintln(w, "History:")
	}
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "ATTEMPT\tTIME\tDURATION\tCODE\tERROR")
	for _, a := range in.History {
		code := "-"
		if a.StatusCode != 0 {
			code = fmt.Sprint(a.StatusCode)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", a.Number, a.Time.UTC().Format(time.RFC3339), a.Duration.Duration, code, escapeText(oneLine(a.Error)))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Responses:")
	for _, a := range in.History {
		body := a.ResponseBody
		if body == "" {
			body = "(empty)"
		}
		fmt.Fprintf(w, "  attempt %d: %s\n", a.Number, escapeText(body))
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
