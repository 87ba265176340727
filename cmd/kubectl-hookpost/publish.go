package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	pgsource "github.com/hookpost/hookpost/internal/source/postgres"
)

type publishOptions struct {
	*rootOptions
	postgresDSN, natsURL              string
	eventType, tenant, collection, id string
	data                              string
	schema, table, subjectPrefix      string
	timeout                           time.Duration
}

func newPublishCommand(root *rootOptions) *cobra.Command {
	o := &publishOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "publish (--postgres DSN | --nats URL) --type TYPE [--data JSON]",
		Short: "Put an event into a Hookpost source",
		Long: `Puts an event where Hookpost's sources read it, as a producer would: a row in the Postgres outbox table
(the INSERT of the outbox contract) or a message on the JetStream subject prefix + type, with the headers the
NATS source reads. Hookpost then delivers it to every matching subscription.

Without --data the event carries built-in sample data for these types:
  ` + strings.Join(sampleTypes(), ", "),
		Example: `  kubectl hookpost publish --postgres postgres://app@db:5432/shop --type order.created --tenant 123
  kubectl hookpost publish --nats nats://nats:4222 --type insert --collection posts --data '{"_id":"1"}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context()) },
	}
	f := cmd.Flags()
	f.StringVar(&o.postgresDSN, "postgres", "", "Publish into the Postgres outbox at this DSN.")
	f.StringVar(&o.natsURL, "nats", "", "Publish to JetStream at this NATS URL.")
	f.StringVar(&o.eventType, "type", "", "Event type, such as order.created (required).")
	f.StringVar(&o.tenant, "tenant", "", "Tenant id of the event.")
	f.StringVar(&o.collection, "collection", "", "Collection of the event.")
	f.StringVar(&o.id, "id", "", "Event id (a UUID for Postgres). Default: a new UUID.")
	f.StringVar(&o.data, "data", "", "Event data, a JSON object. Default: built-in sample data for the type.")
	f.StringVar(&o.schema, "schema", pgsource.DefaultSchema, "Postgres schema of the outbox table.")
	f.StringVar(&o.table, "table", pgsource.DefaultTable, "Postgres outbox table.")
	f.StringVar(&o.subjectPrefix, "subject-prefix", natssource.DefaultSubjectPrefix, "NATS subject prefix; the subject is prefix + type.")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "How long to try to publish.")
	cmd.MarkFlagsMutuallyExclusive("postgres", "nats")
	cmd.MarkFlagsOneRequired("postgres", "nats")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

func (o *publishOptions) run(ctx context.Context) error {
	data := o.data
	if data == "" {
		sample, ok := sampleData[o.eventType]
		if !ok {
			return fmt.Errorf("no built-in sample data for event type %q: pass --data", o.eventType)
		}
		data = sample
	}
	ev := source.Event{
		ID: o.id, Type: o.eventType, TenantID: o.tenant, Collection: o.collection,
		OccurredAt: time.Now().UTC(), Data: []byte(data),
	}
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	// Refuse here what the source would set aside after the fact.
	if reason := source.ValidateEvent(ev, 0); reason != "" {
		return errors.New(reason)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.postgresDSN != "" {
		return o.publishPostgres(ctx, ev)
	}
	return o.publishNATS(ctx, ev)
}

func (o *publishOptions) publishPostgres(ctx context.Context, ev source.Event) error {
	if _, err := uuid.Parse(ev.ID); err != nil {
		return fmt.Errorf("--id %q: the outbox's event_id is a UUID", ev.ID)
	}
	conn, err := pgx.Connect(ctx, o.postgresDSN)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()

	// The producer's statement, run in a transaction with the id set afterwards: InsertSQL leaves event_id to
	// its default, and a given --id must replace it before any Hookpost replica can claim the row.
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var rowID int64
	err = tx.QueryRow(ctx, pgsource.InsertSQL(o.schema, o.table)+" RETURNING id",
		ev.Type, nullable(ev.TenantID), nullable(ev.Collection), string(ev.Data)).Scan(&rowID)
	if err != nil {
		return fmt.Errorf("insert into the outbox %s.%s: %w", o.schema, o.table, err)
	}
	table := pgx.Identifier{o.schema, o.table}.Sanitize()
	if _, err := tx.Exec(ctx, "UPDATE "+table+" SET event_id = $1, occurred_at = $2 WHERE id = $3", ev.ID, ev.OccurredAt, rowID); err != nil {
		return fmt.Errorf("set the event id: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	fmt.Fprintf(o.streams.Out, "event %s (%s) published to postgres table %s.%s, row %d\n", ev.ID, ev.Type, o.schema, o.table, rowID)
	return nil
}

func (o *publishOptions) publishNATS(ctx context.Context, ev source.Event) error {
	nc, err := natsgo.Connect(o.natsURL, natsgo.Name("kubectl-hookpost"), natsgo.Timeout(o.timeout))
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := natssource.Publish(ctx, js, o.subjectPrefix, ev); err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, natsgo.ErrNoResponders) {
			return fmt.Errorf("%w (no JetStream stream captures %s*; Hookpost creates one when its NATS source runs with stream creation enabled)", err, o.subjectPrefix)
		}
		return err
	}
	fmt.Fprintf(o.streams.Out, "event %s (%s) published to nats subject %s%s\n", ev.ID, ev.Type, o.subjectPrefix, ev.Type)
	return nil
}

// nullable maps "" to SQL NULL, as the outbox reads a missing tenant or collection.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
