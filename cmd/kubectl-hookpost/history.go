package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
)

// ledgerDSNEnv is where history reads the ledger's DSN when --ledger-dsn is not given: the manager's variable,
// so one Secret can serve both.
const ledgerDSNEnv = "HOOKPOST_LEDGER_DSN"

// errorColumnWidth is how many characters of an error the table shows; -o json and yaml show all of it.
const errorColumnWidth = 60

// ledgerOptions are the flags that reach the delivery ledger, shared by history and dead-letters.
type ledgerOptions struct {
	dsn, schema, table string
	timeout            time.Duration
}

func (l *ledgerOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&l.dsn, "ledger-dsn", "", "PostgreSQL DSN of the delivery ledger. Default: $"+ledgerDSNEnv+".")
	f.StringVar(&l.schema, "ledger-schema", ledgerpg.DefaultSchema, "Schema of the ledger table, as the manager's --ledger-schema.")
	f.StringVar(&l.table, "ledger-table", ledgerpg.DefaultTable, "Ledger table, as the manager's --ledger-table.")
	f.DurationVar(&l.timeout, "timeout", 30*time.Second, "How long to wait for the ledger's database.")
}

// resolveDSN is --ledger-dsn, else $HOOKPOST_LEDGER_DSN, else "" (no ledger).
func (l *ledgerOptions) resolveDSN() string {
	if l.dsn == "" {
		l.dsn = os.Getenv(ledgerDSNEnv)
	}
	return l.dsn
}

// query reads the attempts that pass f from the ledger.
func (l *ledgerOptions) query(ctx context.Context, f ledgerpg.Filter) ([]ledger.Attempt, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	w, err := ledgerpg.New(ctx, ledgerpg.Options{DSN: l.dsn, Schema: l.schema, Table: l.table})
	if err != nil {
		return nil, err
	}
	defer w.Close()
	return w.Query(ctx, f)
}

type historyOptions struct {
	*rootOptions
	ledgerOptions
	subscription, event, outcome string
	since                        string
	limit                        int
	allNamespaces                bool
	output                       string
}

func newHistoryCommand(root *rootOptions) *cobra.Command {
	o := &historyOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "history [--subscription SUBSCRIPTION | --event EVENT_ID]",
		Short: "List the HTTP attempts of deliveries from the delivery ledger",
		Long: `Lists HTTP attempts from the delivery ledger, the PostgreSQL table the operator appends every attempt of
every delivery to (see --ledger-* in the manager's flags). The ledger keeps attempts for its retention (30
days by default), after WebhookDeliveries have been pruned by their subscription's history limits, attempts
that never had a WebhookDelivery object, and every attempt of a delivery that made more than the 10 its status
keeps (status.attemptsNotInHistory counts those left out).

Shows the latest --limit attempts that pass the filters, oldest first. OUTCOME is what the delivery became
after the attempt: succeeded, retrying, failed, or refused (the API server refused its WebhookDelivery, so
the event was not delivered to that subscription; attempt 0 when no HTTP attempt was made). Without a ledger
only WebhookDeliveries within the history limits remain: use kubectl get whdel and kubectl hookpost inspect.`,
		Example: `  kubectl hookpost history --ledger-dsn postgres://reader@db:5432/hookpost --subscription orders --since 2h
  kubectl hookpost history --subscription orders --outcome failed --since 2025-11-16T08:00:00Z -o json
  kubectl hookpost history -A --event 3f2a9c0e-1d7b-4a5c-9e10-2b3c4d5e6f70`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context()) },
	}
	f := cmd.Flags()
	o.ledgerOptions.addFlags(f)
	// No -s: kubectl's connection flags, which every command shares, hold it for --server.
	f.StringVar(&o.subscription, "subscription", "", "Only attempts of this subscription.")
	f.StringVar(&o.event, "event", "", "Only attempts of this event id, for every subscription it matched.")
	f.StringVar(&o.outcome, "outcome", "", "Only attempts after which the delivery was succeeded, retrying, failed or refused.")
	f.StringVar(&o.since, "since", "", "Only attempts within this long, such as 1h, or since this RFC 3339 time, such as 2025-11-16T08:00:00Z.")
	f.IntVar(&o.limit, "limit", ledgerpg.DefaultQueryLimit, "Show at most this many attempts, the latest.")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "Attempts of subscriptions in every namespace.")
	addOutputFlag(cmd, &o.output, "wide")
	return cmd
}

func (o *historyOptions) run(ctx context.Context) error {
	if err := validateOutput(o.output, "wide"); err != nil {
		return err
	}
	if o.limit <= 0 {
		return fmt.Errorf("--limit %d: give a positive number of attempts", o.limit)
	}
	since, err := parseSince(o.since, time.Now())
	if err != nil {
		return err
	}
	if o.resolveDSN() == "" {
		return errors.New("no ledger to read: pass --ledger-dsn or set " + ledgerDSNEnv + " to the manager's ledger database. " +
			"Without a ledger only WebhookDeliveries within their subscription's history limits remain: kubectl get whdel, kubectl hookpost inspect")
	}
	filter := ledgerpg.Filter{
		Subscription: o.subscription, EventID: o.event, Outcome: ledger.Outcome(o.outcome), Since: since, Limit: o.limit,
	}
	ns := ""
	if !o.allNamespaces {
		if ns, err = o.namespace(); err != nil {
			return err
		}
		filter.Namespace = ns
	}
	attempts, err := o.query(ctx, filter)
	if err != nil {
		return err
	}

	switch o.output {
	case "json", "yaml":
		res := historyResult{Attempts: make([]historyAttempt, 0, len(attempts))}
		for _, a := range attempts {
			res.Attempts = append(res.Attempts, newHistoryAttempt(a))
		}
		return printStructured(o.streams.Out, o.output, res)
	}
	if len(attempts) == 0 {
		where := "in any namespace"
		if ns != "" {
			where = "in namespace " + ns
		}
		fmt.Fprintf(o.streams.ErrOut, "No attempts found %s.\n", escapeText(where))
		return nil
	}
	printHistory(o.streams.Out, attempts, o.allNamespaces, o.output == "wide")
	return nil
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q is negative: give how long back, such as 1h", v)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q is neither a duration nor a time: use a duration such as 90m or 2h, or an RFC 3339 time such as 2025-11-16T08:00:00Z", v)
}

// historyResult is history's -o json and yaml form.
type historyResult struct {
	Attempts []historyAttempt `json:"attempts"`
}

// historyAttempt is one attempt in -o json and yaml.
type historyAttempt struct {
	Time         time.Time `json:"time"`
	Namespace    string    `json:"namespace"`
	Subscription string    `json:"subscription"`
	Delivery     string    `json:"delivery"`
	EventID      string    `json:"eventID"`
	EventType    string    `json:"eventType"`
	TenantID     string    `json:"tenantID,omitempty"`
	Collection   string    `json:"collection,omitempty"`
	Attempt      int       `json:"attempt"`
	// Duration is a Go duration string, such as 1.234s.
	Duration   string `json:"duration"`
	StatusCode int    `json:"statusCode,omitempty"`
	ErrorClass string `json:"errorClass,omitempty"`
	Error      string `json:"error,omitempty"`
	// Response is the response body's first KiB when it is UTF-8 text; ResponseBase64 holds it otherwise.
	Response       string         `json:"response,omitempty"`
	ResponseBase64 string         `json:"responseBase64,omitempty"`
	NextRetry      *time.Time     `json:"nextRetry,omitempty"`
	Outcome        ledger.Outcome `json:"outcome"`
	Test           bool           `json:"test,omitempty"`
	Replay         bool           `json:"replay,omitempty"`
}

func newHistoryAttempt(a ledger.Attempt) historyAttempt {
	h := historyAttempt{
		Time: a.Time, Namespace: a.Namespace, Subscription: a.Subscription, Delivery: a.DeliveryName,
		EventID: a.EventID, EventType: a.EventType, TenantID: a.TenantID, Collection: a.Collection,
		Attempt: a.Number, Duration: a.Duration.String(), StatusCode: a.StatusCode, ErrorClass: a.ErrorClass,
		Error: a.Error, Outcome: a.Outcome, Test: a.Test, Replay: a.Replay,
	}
	if utf8.Valid(a.Response) {
		h.Response = string(a.Response)
	} else {
		h.ResponseBase64 = base64.StdEncoding.EncodeToString(a.Response)
	}
	if !a.NextRetry.IsZero() {
		h.NextRetry = &a.NextRetry
	}
	return h
}

// printHistory writes the attempts as a table; with wide, also the delivery, tenant, collection, class and next
// retry. Every string from the ledger is escaped: a tenant id or a receiver's error must not drive the terminal.
func printHistory(w io.Writer, attempts []ledger.Attempt, withNamespace, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	header := []string{"TIME", "SUBSCRIPTION", "EVENT", "TYPE", "ATTEMPT", "STATUS", "DURATION", "OUTCOME", "ERROR"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	if wide {
		header = append(header, "DELIVERY", "TENANT", "COLLECTION", "CLASS", "NEXT RETRY")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, a := range attempts {
		status := "-"
		if a.StatusCode != 0 {
			status = strconv.Itoa(a.StatusCode)
		}
		number := strconv.Itoa(a.Number)
		if a.Test {
			number += " (test)"
		}
		if a.Replay {
			number += " (replay)"
		}
		cells := []string{
			a.Time.UTC().Format(time.RFC3339), cell(a.Subscription), cell(a.EventID), cell(a.EventType), number, status,
			a.Duration.Round(time.Millisecond).String(), cell(string(a.Outcome)), cell(truncate(a.Error, errorColumnWidth)),
		}
		if withNamespace {
			cells = append([]string{cell(a.Namespace)}, cells...)
		}
		if wide {
			next := "-"
			if !a.NextRetry.IsZero() {
				next = a.NextRetry.UTC().Format(time.RFC3339)
			}
			cells = append(cells, cell(a.DeliveryName), cell(a.TenantID), cell(a.Collection), cell(a.ErrorClass), next)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
}

// cell is s escaped for a table cell, "-" when empty. Tabs are escaped too, so they cannot shift columns.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return escapeText(s)
}

// truncate cuts s to n characters, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}
