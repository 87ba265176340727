package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/hookpost/hookpost/internal/ingest"
	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/internal/source/postgres"
)

// sourceOptions configure the event sources; either, both or none may be set.
type sourceOptions struct {
	postgresDSN, postgresTable, postgresSchema string
	postgresMigrate, postgresPrintDDL          bool
	postgresRetention                          time.Duration
	natsURL, natsStream, natsSubjectPrefix     string
	natsCreds                                  string
	natsCreateStream                           bool
	batchSize, parallelism                     int
}

func (o *sourceOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.postgresDSN, "postgres-dsn", "", "PostgreSQL DSN of the outbox; empty disables the outbox source. Env HOOKPOST_POSTGRES_DSN.")
	fs.StringVar(&o.postgresSchema, "postgres-schema", postgres.DefaultSchema, "Schema of the outbox table. Env HOOKPOST_POSTGRES_SCHEMA.")
	fs.StringVar(&o.postgresTable, "postgres-table", postgres.DefaultTable, "Outbox table. Env HOOKPOST_POSTGRES_TABLE.")
	fs.BoolVar(&o.postgresMigrate, "postgres-migrate", false, "Create the outbox table, its index and NOTIFY trigger if missing. Env HOOKPOST_POSTGRES_MIGRATE.")
	fs.BoolVar(&o.postgresPrintDDL, "postgres-print-ddl", false, "Print the outbox DDL (for DBAs who apply schema themselves) and exit.")
	fs.DurationVar(&o.postgresRetention, "postgres-retention", 24*time.Hour, "How long done outbox rows are kept; negative keeps them. Env HOOKPOST_POSTGRES_RETENTION.")
	fs.StringVar(&o.natsURL, "nats-url", "", "NATS URL; empty disables the JetStream source. Env HOOKPOST_NATS_URL.")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "NATS credentials file (JWT + NKey). Env HOOKPOST_NATS_CREDS.")
	fs.StringVar(&o.natsStream, "nats-stream", natssource.DefaultStream, "JetStream stream. Env HOOKPOST_NATS_STREAM.")
	fs.StringVar(&o.natsSubjectPrefix, "nats-subject-prefix", natssource.DefaultSubjectPrefix, "Subject prefix; the event type is the rest of the subject. Env HOOKPOST_NATS_SUBJECT_PREFIX.")
	fs.BoolVar(&o.natsCreateStream, "nats-create-stream", false, "Create the stream if missing. Env HOOKPOST_NATS_CREATE_STREAM.")
	fs.IntVar(&o.batchSize, "ingest-batch-size", 500, "Events claimed from a source at once. Env HOOKPOST_INGEST_BATCH_SIZE.")
	fs.IntVar(&o.parallelism, "ingest-parallelism", 32, "WebhookDelivery creations in flight per source. Env HOOKPOST_INGEST_PARALLELISM.")
}

// setup adds an ingest runnable, and a readiness check, per configured source.
func (o *sourceOptions) setup(ctx context.Context, mgr ctrl.Manager, clk clock.PassiveClock) error {
	log := ctrl.Log.WithName("source")
	onReject := func(r source.Rejection) {
		ingest.ObserveRejection(r)
		log.Info("Malformed event set aside", "source", r.Source, "eventID", r.ID, "reason", r.Reason)
	}
	var srcs []source.Source
	if o.postgresDSN != "" {
		pg, err := postgres.New(ctx, postgres.Options{
			DSN: o.postgresDSN, Schema: o.postgresSchema, Table: o.postgresTable,
			Retention: o.postgresRetention, OnReject: onReject,
		})
		if err != nil {
			return fmt.Errorf("postgres source: %w", err)
		}
		if o.postgresMigrate {
			if err := pg.Migrate(ctx); err != nil {
				return fmt.Errorf("postgres source: migrate: %w", err)
			}
		}
		srcs = append(srcs, pg)
	}
	if o.natsURL != "" {
		ns, err := natssource.New(ctx, natssource.Options{
			URL: o.natsURL, CredsFile: o.natsCreds, Stream: o.natsStream, SubjectPrefix: o.natsSubjectPrefix,
			CreateStream: o.natsCreateStream, OnReject: onReject,
		})
		if err != nil {
			return fmt.Errorf("nats source: %w", err)
		}
		srcs = append(srcs, ns)
	}
	for _, src := range srcs {
		in := ingest.New(src, mgr.GetCache(), ingest.DeliveryCreator{Client: mgr.GetClient()},
			ingest.Options{BatchSize: o.batchSize, Parallelism: o.parallelism, Clock: clk})
		if err := mgr.Add(in); err != nil {
			return fmt.Errorf("add %s ingest: %w", src.Name(), err)
		}
		if err := mgr.AddReadyzCheck("source-"+src.Name(), func(req *http.Request) error { return src.Ready(req.Context()) }); err != nil {
			return fmt.Errorf("add %s ready check: %w", src.Name(), err)
		}
		log.Info("Event source configured", "source", src.Name())
	}
	return nil
}
