package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
)

// ledgerOptions configure the delivery ledger, the PostgreSQL table every HTTP attempt is appended to.
type ledgerOptions struct {
	dsn, schema, table string
	retention          time.Duration
	migrate, printDDL  bool
	// registerer receives the ledger's metrics; nil means controller-runtime's registry (tests set their own).
	registerer prometheus.Registerer
}

func (o *ledgerOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.dsn, "ledger-dsn", "", "PostgreSQL DSN of the delivery ledger; empty uses --postgres-dsn, and without either there is no ledger. Env HOOKPOST_LEDGER_DSN.")
	fs.StringVar(&o.schema, "ledger-schema", ledgerpg.DefaultSchema, "Schema of the ledger table. Env HOOKPOST_LEDGER_SCHEMA.")
	fs.StringVar(&o.table, "ledger-table", ledgerpg.DefaultTable, "Ledger table. Env HOOKPOST_LEDGER_TABLE.")
	fs.DurationVar(&o.retention, "ledger-retention", ledgerpg.DefaultRetention, "How long attempts are kept in the ledger; negative keeps them. Env HOOKPOST_LEDGER_RETENTION.")
	fs.BoolVar(&o.migrate, "ledger-migrate", false, "Create the ledger table and its indexes if missing. Env HOOKPOST_LEDGER_MIGRATE.")
	fs.BoolVar(&o.printDDL, "ledger-print-ddl", false, "Print the ledger DDL (for DBAs who apply schema themselves) and exit.")
}

// ddl is what --ledger-print-ddl prints: the ledger table and, next to it, the tables of parked and pruned
// deliveries.
func (o *ledgerOptions) ddl() string {
	return ledgerpg.AllDDL(o.schema, o.table)
}

// open returns the ledger writer, migrated when --ledger-migrate is set (or, in the outbox's database, when the
// outbox is migrated), with its metrics registered; or nil
// and no error when neither --ledger-dsn nor the outbox's DSN is set. The caller adds the writer to the
// manager (it is a Runnable that runs on every replica) and hands it to whatever records attempts; when it is
// nil, hand them ledger.Discard instead, not the nil *Writer, which would be a non-nil Recorder that panics.
func (o *ledgerOptions) open(ctx context.Context, outboxDSN string, outboxMigrate bool) (*ledgerpg.Writer, error) {
	dsn, migrate := o.dsn, o.migrate
	if dsn == "" {
		// In the outbox's database, the ledger is migrated with the outbox.
		dsn, migrate = outboxDSN, migrate || outboxMigrate
	}
	if dsn == "" {
		return nil, nil
	}
	reg := o.registerer
	if reg == nil {
		reg = metrics.Registry
	}
	var w *ledgerpg.Writer
	err := waitFor(ctx, "the ledger's PostgreSQL", unreachable, func(ctx context.Context) error {
		// The writer is made once: it registers its metrics, which a second writer could not. A migration that
		// finds the database down is tried again on the same writer.
		if w == nil {
			var err error
			if w, err = ledgerpg.New(ctx, ledgerpg.Options{
				DSN: dsn, Schema: o.schema, Table: o.table, Retention: o.retention,
				Registerer: reg, Log: ctrl.Log.WithName("ledger"),
			}); err != nil {
				return fmt.Errorf("ledger: %w", err)
			}
		}
		if migrate {
			if err := w.Migrate(ctx); err != nil {
				return fmt.Errorf("ledger: migrate: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		if w != nil {
			w.Close()
		}
		return nil, err
	}
	return w, nil
}
