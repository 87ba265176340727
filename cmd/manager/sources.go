package main

import (
	"context"
	"flag"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// sourceOptions configure the event sources; either, both or none may be set.
type sourceOptions struct {
	postgresDSN, postgresTable, postgresSchema string
	postgresMigrate                            bool
	natsURL, natsStream, natsSubjectPrefix     string
	natsCreateStream                           bool
}

func (o *sourceOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.postgresDSN, "postgres-dsn", env("HOOKPOST_POSTGRES_DSN", ""), "PostgreSQL DSN of the outbox; empty disables the outbox source. Env HOOKPOST_POSTGRES_DSN.")
	fs.StringVar(&o.postgresSchema, "postgres-schema", env("HOOKPOST_POSTGRES_SCHEMA", "public"), "Schema of the outbox table. Env HOOKPOST_POSTGRES_SCHEMA.")
	fs.StringVar(&o.postgresTable, "postgres-table", env("HOOKPOST_POSTGRES_TABLE", "integration_outbox"), "Outbox table. Env HOOKPOST_POSTGRES_TABLE.")
	fs.BoolVar(&o.postgresMigrate, "postgres-migrate", envBool("HOOKPOST_POSTGRES_MIGRATE", false), "Create the outbox table, index and NOTIFY trigger if missing. Env HOOKPOST_POSTGRES_MIGRATE.")
	fs.StringVar(&o.natsURL, "nats-url", env("HOOKPOST_NATS_URL", ""), "NATS URL; empty disables the JetStream source. Env HOOKPOST_NATS_URL.")
	fs.StringVar(&o.natsStream, "nats-stream", env("HOOKPOST_NATS_STREAM", "HOOKPOST"), "JetStream stream. Env HOOKPOST_NATS_STREAM.")
	fs.StringVar(&o.natsSubjectPrefix, "nats-subject-prefix", env("HOOKPOST_NATS_SUBJECT_PREFIX", "hookpost.events."), "Subject prefix; the event type is the rest of the subject. Env HOOKPOST_NATS_SUBJECT_PREFIX.")
	fs.BoolVar(&o.natsCreateStream, "nats-create-stream", envBool("HOOKPOST_NATS_CREATE_STREAM", false), "Create the stream if missing. Env HOOKPOST_NATS_CREATE_STREAM.")
}

// setup adds a runnable per configured source.
func (o *sourceOptions) setup(ctx context.Context, mgr ctrl.Manager, clk clock.Clock) error {
	return nil
}
