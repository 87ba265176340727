package main

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/test/harness"
)

func parseLedger(t *testing.T, args []string, env map[string]string) (*ledgerOptions, error) {
	t.Helper()
	var o ledgerOptions
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &o, applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestLedgerFlagsDefaultsAndEnvironment(t *testing.T) {
	o, err := parseLedger(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.dsn != "" || o.schema != "public" || o.table != "webhook_deliveries" || o.retention != 720*time.Hour || o.migrate || o.printDDL {
		t.Errorf("defaults %+v", o)
	}

	o, err = parseLedger(t, []string{"--ledger-table=attempts"}, map[string]string{
		"HOOKPOST_LEDGER_DSN":       "postgres://db/ledger",
		"HOOKPOST_LEDGER_SCHEMA":    "hookpost",
		"HOOKPOST_LEDGER_TABLE":     "from_env",
		"HOOKPOST_LEDGER_RETENTION": "2160h",
		"HOOKPOST_LEDGER_MIGRATE":   "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.dsn != "postgres://db/ledger" || o.schema != "hookpost" || o.retention != 2160*time.Hour || !o.migrate {
		t.Errorf("from the environment: %+v", o)
	}
	if o.table != "attempts" {
		t.Errorf("table %q: the command line must win over the environment", o.table)
	}
	if _, err := parseLedger(t, nil, map[string]string{"HOOKPOST_LEDGER_RETENTION": "30d"}); err == nil || !strings.Contains(err.Error(), "HOOKPOST_LEDGER_RETENTION") {
		t.Errorf("a retention the flag refuses: %v, want an error naming the variable", err)
	}
}

func TestEveryLedgerFlagHasItsVariableInItsUsage(t *testing.T) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	(&ledgerOptions{}).bind(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.HasPrefix(f.Name, "ledger-") {
			t.Errorf("--%s is not a ledger flag", f.Name)
		}
		if name := envName(f.Name); name != "" && !strings.Contains(f.Usage, name) {
			t.Errorf("--%s usage does not name %s", f.Name, name)
		}
	})
	if n != 6 {
		t.Errorf("%d ledger flags, want 6", n)
	}
}

func TestOpenLedger(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := parseLedger(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := o.open(ctx, "", false); w != nil || err != nil {
		t.Fatalf("open without any DSN = %v, %v; want no ledger and no error", w, err)
	}

	// Without --ledger-dsn the ledger lives in the outbox's database.
	pg := harness.StartPostgres(t)
	o, err = parseLedger(t, []string{"--ledger-migrate", "--ledger-schema=hookpost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o.registerer = reg
	w, err := o.open(ctx, pg.DSN(), false)
	if err != nil || w == nil {
		t.Fatalf("open with the outbox DSN = %v, %v", w, err)
	}
	defer w.Close()
	w.Record(ledger.Attempt{DeliveryName: "orders-1", Namespace: "shop", Subscription: "orders", EventID: "1", EventType: "order.created",
		Number: 1, Time: time.Now(), Outcome: ledger.OutcomeSucceeded, StatusCode: 200})
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("flush to the migrated table: %v", err)
	}
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM hookpost.webhook_deliveries`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("hookpost.webhook_deliveries holds %d rows (%v), want 1", rows, err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"hookpost_ledger_rows_written_total", "hookpost_ledger_dropped_total", "hookpost_ledger_buffered"} {
		if !names[want] {
			t.Errorf("metric %s not registered (have %v)", want, names)
		}
	}
	if !strings.Contains(o.ddl(), `"hookpost"."webhook_deliveries"`) || !strings.Contains(o.ddl(), `"hookpost"."webhook_deliveries_parked"`) ||
		!strings.Contains(o.ddl(), `"hookpost"."webhook_deliveries_pruned"`) {
		t.Errorf("--ledger-print-ddl prints:\n%s\nwant the ledger table and the parked and pruned tables next to it", o.ddl())
	}
	// Migrated with the ledger: the parked deliveries' table is there.
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM hookpost.webhook_deliveries_parked`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("hookpost.webhook_deliveries_parked: %d rows (%v), want an empty table", rows, err)
	}
}
