package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/hookpost/hookpost/internal/ledger"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/test/harness"
)

func TestHistoryFromTheLedger(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
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
	// A receiver's error and a producer's tenant and collection are text from outside: here they try to
	// colour the terminal, set its title and clear the screen (ESC, BEL, and the C1 CSI).
	hostileError := "HTTP 503 Service Unavailable\n\x1b[31mred\x1b[0m and a long tail that the table cuts off somewhere"
	hostileTenant := "t\x1b]0;pwned\x07"
	hostileCollection := "orders\u009b2J"
	binary := []byte{0xff, 0x00, 0xfe}
	attempts := []ledger.Attempt{
		{DeliveryName: "orders-1", Namespace: "shop", Subscription: "orders", EventID: "evt-1", EventType: "order.created",
			TenantID: hostileTenant, Collection: hostileCollection, Number: 1, Time: now.Add(-3 * time.Hour),
			Duration: 1234 * time.Millisecond, StatusCode: 503, ErrorClass: "Retry", Error: hostileError,
			Response: []byte("busy"), NextRetry: now.Add(-3*time.Hour + time.Minute), Outcome: ledger.OutcomeRetrying},
		{DeliveryName: "orders-1", Namespace: "shop", Subscription: "orders", EventID: "evt-1", EventType: "order.created",
			Number: 2, Time: now.Add(-30 * time.Minute), Duration: 80 * time.Millisecond, StatusCode: 200,
			ErrorClass: "Succeeded", Outcome: ledger.OutcomeSucceeded, Replay: true},
		{DeliveryName: "invoices-2", Namespace: "shop", Subscription: "invoices", EventID: "evt-2", EventType: "invoice.paid",
			Number: 1, Time: now.Add(-20 * time.Minute), Duration: 3 * time.Millisecond, ErrorClass: "Permanent",
			Error: "connection refused", Response: binary, Outcome: ledger.OutcomeFailed},
		{DeliveryName: "orders-3", Namespace: "other", Subscription: "orders", EventID: "evt-1", EventType: "order.created",
			Number: 1, Time: now.Add(-10 * time.Minute), Duration: 5 * time.Millisecond, StatusCode: 204,
			ErrorClass: "Succeeded", Outcome: ledger.OutcomeSucceeded, Test: true},
	}
	for _, a := range attempts {
		w.Record(a)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	dsn := pg.DSN()
	history := func(args ...string) string {
		t.Helper()
		out := mustRun(t, append([]string{"history", "--ledger-dsn", dsn}, args...)...)
		if c := controlCharacter(out); c != "" {
			t.Errorf("history %v printed a raw control character %s:\n%s", args, c, out)
		}
		return out
	}

	out := history("-n", "shop")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "TIME SUBSCRIPTION EVENT TYPE ATTEMPT STATUS DURATION OUTCOME ERROR" {
		t.Fatalf("table:\n%s", out)
	}
	for i, want := range [][]string{
		{now.Add(-3 * time.Hour).Format(time.RFC3339), "orders", "evt-1", "order.created", "1", "503", "1.234s", "retrying", `HTTP 503 Service Unavailable\n\x1b[31mred\x1b[0m and a long tail...`},
		{"orders", "evt-1", "2 (replay)", "200", "80ms", "succeeded", "-"},
		{"invoices", "evt-2", "invoice.paid", "1", " - ", "3ms", "failed", "connection refused"},
	} {
		for _, cell := range want {
			if !strings.Contains(lines[i+1], cell) {
				t.Errorf("row %d lacks %q:\n%s", i+1, cell, lines[i+1])
			}
		}
	}
	if strings.Contains(out, "cuts off") {
		t.Errorf("the error column is not truncated:\n%s", out)
	}

	wide := history("-n", "shop", "-o", "wide")
	for _, want := range []string{"DELIVERY", "TENANT", "COLLECTION", "CLASS", "NEXT RETRY", `t\x1b]0;pwned\x07`, `orders\x9b2J`, "orders-1", "Permanent",
		now.Add(-3*time.Hour + time.Minute).Format(time.RFC3339)} {
		if !strings.Contains(wide, want) {
			t.Errorf("-o wide lacks %q:\n%s", want, wide)
		}
	}

	for _, tc := range []struct {
		args []string
		want []string // event and attempt of each row, in order
	}{
		{[]string{"-n", "shop", "--subscription", "orders"}, []string{"evt-1 1", "evt-1 2"}},
		{[]string{"-A", "--event", "evt-1"}, []string{"evt-1 1", "evt-1 2", "evt-1 1"}},
		{[]string{"-n", "shop", "--outcome", "failed"}, []string{"evt-2 1"}},
		{[]string{"-n", "shop", "--since", "1h"}, []string{"evt-1 2", "evt-2 1"}},
		{[]string{"-n", "shop", "--since", now.Add(-25 * time.Minute).Format(time.RFC3339)}, []string{"evt-2 1"}},
		{[]string{"-n", "shop", "--limit", "1"}, []string{"evt-2 1"}},
	} {
		var res historyResult
		if err := json.Unmarshal([]byte(history(append(tc.args, "-o", "json")...)), &res); err != nil {
			t.Fatalf("history %v -o json: %v", tc.args, err)
		}
		var got []string
		for _, a := range res.Attempts {
			got = append(got, a.EventID+" "+string(rune('0'+a.Attempt)))
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("history %v = %v, want %v", tc.args, got, tc.want)
		}
	}
	if out := history("-A", "--event", "evt-1"); !strings.HasPrefix(out, "NAMESPACE") || !strings.Contains(out, "other") {
		t.Errorf("-A table lacks the namespace:\n%s", out)
	}

	// json and yaml escape what the table escapes, and still read back to the exact values.
	for _, format := range []string{"json", "yaml"} {
		out := history("-n", "shop", "-o", format)
		var res historyResult
		var err error
		if format == "json" {
			err = json.Unmarshal([]byte(out), &res)
		} else {
			err = yaml.Unmarshal([]byte(out), &res)
		}
		if err != nil || len(res.Attempts) != 3 {
			t.Fatalf("-o %s: %v, %d attempts:\n%s", format, err, len(res.Attempts), out)
		}
		first, second, third := res.Attempts[0], res.Attempts[1], res.Attempts[2]
		if first.Error != hostileError || first.TenantID != hostileTenant || first.Collection != hostileCollection ||
			first.Response != "busy" || first.NextRetry == nil || !first.NextRetry.Equal(attempts[0].NextRetry) ||
			first.Duration != "1.234s" || first.StatusCode != 503 || first.Outcome != ledger.OutcomeRetrying || first.Delivery != "orders-1" {
			t.Errorf("-o %s first attempt %+v", format, first)
		}
		if !second.Replay || second.NextRetry != nil || second.Error != "" {
			t.Errorf("-o %s second attempt %+v", format, second)
		}
		if third.Response != "" || third.ResponseBase64 != base64.StdEncoding.EncodeToString(binary) || third.StatusCode != 0 {
			t.Errorf("-o %s third attempt %+v: a body that is not UTF-8 belongs in responseBase64", format, third)
		}
	}

	if r := run(t, "", "history", "--ledger-dsn", dsn, "--subscription", "nobody", "-n", "shop"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No attempts found in namespace shop") {
		t.Errorf("no attempts: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--outcome", "Failed"}, "--outcome succeeded, retrying, failed or refused"},
		{[]string{"--since", "yesterday"}, "RFC 3339"},
		{[]string{"--limit", "0"}, "--limit"},
		{[]string{"-o", "xml"}, "json, yaml or wide"},
	} {
		r := run(t, "", append([]string{"history", "--ledger-dsn", dsn, "-n", "shop"}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("history %v: exit %d, stderr %q; want an error containing %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	// The DSN can come from the manager's variable instead.
	t.Setenv(ledgerDSNEnv, dsn)
	if out := mustRun(t, "history", "-n", "other"); !strings.Contains(out, "1 (test)") {
		t.Errorf("history with %s:\n%s", ledgerDSNEnv, out)
	}
	t.Setenv(ledgerDSNEnv, "")
	if r := run(t, "", "history", "-n", "shop"); r.code == 0 || !strings.Contains(r.stderr, ledgerDSNEnv) || !strings.Contains(r.stderr, "kubectl get whdel") {
		t.Errorf("history without a ledger: exit %d, stderr %q", r.code, r.stderr)
	}
}

// controlCharacter returns the first character in s a terminal could act on, other than newline, quoted; or "".
func controlCharacter(s string) string {
	for _, r := range s {
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) {
			return strconv.QuoteRune(r)
		}
	}
	return ""
}
