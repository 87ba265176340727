package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ingest"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/internal/source/postgres"
)

// sourceOptions configure the event sources; either, both or none may be set.
type sourceOptions struct {
	postgresDSN, postgresTable, postgresSchema string
	postgresMigrate, postgresPrintDDL          bool
	postgresRetention, postgresClaimLease      time.Duration
	natsURL, natsStream, natsSubjectPrefix     string
	natsCreds                                  string
	natsCreateStream                           bool
	batchSize, parallelism, batchesInFlight    int
	firstAttempt                               bool
	successObjects                             string
	successObjectsPerFlush, successObjectsRate int
	successFlushInterval, hostWait             time.Duration

	// successLog is set by setup when successes are coalesced, for the final flush after the manager stops.
	successLog *ingest.SuccessLog
}

// Values of --success-objects.
const (
	successObjectsNewest = "newest"
	successObjectsAll    = "all"
)

// dispatchDeps are what the first attempt shares with the delivery controller.
type dispatchDeps struct {
	sender    *delivery.Sender
	secrets   *controller.Secrets
	sealer    *controller.Sealer
	ledger    ledger.Recorder
	userAgent string
	// tenantIsolation is --tenant-isolation.
	tenantIsolation bool
	// attemptSlots is the Sender's global slots (--max-concurrent-attempts).
	attemptSlots int
	// breakers holds the subscriptions' circuits, shared with the delivery controller.
	breakers *delivery.Breakers
	// unfinished counts the unfinished deliveries against caps; parking holds the matches past them (nil
	// without a ledger: they are refused).
	unfinished *ingest.Unfinished
	parking    ledger.Parking
	caps       capsOptions
	// watermarks gets every source, for the delivery controller's ordered deliveries.
	watermarks *source.Watermarks
}

func (o *sourceOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.postgresDSN, "postgres-dsn", "", "PostgreSQL DSN of the outbox; empty disables the outbox source. Env HOOKPOST_POSTGRES_DSN.")
	fs.StringVar(&o.postgresSchema, "postgres-schema", postgres.DefaultSchema, "Schema of the outbox table. Env HOOKPOST_POSTGRES_SCHEMA.")
	fs.StringVar(&o.postgresTable, "postgres-table", postgres.DefaultTable, "Outbox table. Env HOOKPOST_POSTGRES_TABLE.")
	fs.BoolVar(&o.postgresMigrate, "postgres-migrate", false, "Create the outbox table, its index and NOTIFY trigger if missing. Env HOOKPOST_POSTGRES_MIGRATE.")
	fs.BoolVar(&o.postgresPrintDDL, "postgres-print-ddl", false, "Print the outbox DDL (for DBAs who apply schema themselves) and exit.")
	fs.DurationVar(&o.postgresRetention, "postgres-retention", 24*time.Hour, "How long done outbox rows are kept; negative keeps them. Env HOOKPOST_POSTGRES_RETENTION.")
	fs.DurationVar(&o.postgresClaimLease, "postgres-claim-lease", postgres.DefaultClaimLease, "How long a claimed outbox batch keeps other replicas off its rows; extended while the batch is worked on, so it bounds how soon a crashed replica's rows are claimed again. Env HOOKPOST_POSTGRES_CLAIM_LEASE.")
	fs.StringVar(&o.natsURL, "nats-url", "", "NATS URL; empty disables the JetStream source. Env HOOKPOST_NATS_URL.")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "NATS credentials file (JWT + NKey). Env HOOKPOST_NATS_CREDS.")
	fs.StringVar(&o.natsStream, "nats-stream", natssource.DefaultStream, "JetStream stream. Env HOOKPOST_NATS_STREAM.")
	fs.StringVar(&o.natsSubjectPrefix, "nats-subject-prefix", natssource.DefaultSubjectPrefix, "Subject prefix; the event type is the rest of the subject. Env HOOKPOST_NATS_SUBJECT_PREFIX.")
	fs.BoolVar(&o.natsCreateStream, "nats-create-stream", false, "Create the stream if missing. Env HOOKPOST_NATS_CREATE_STREAM.")
	fs.IntVar(&o.batchSize, "ingest-batch-size", 500, "Events claimed from a source at once. Env HOOKPOST_INGEST_BATCH_SIZE.")
	fs.IntVar(&o.parallelism, "ingest-parallelism", 32, "Matches dispatched at once per batch (first attempts, or WebhookDelivery creations). Env HOOKPOST_INGEST_PARALLELISM.")
	fs.IntVar(&o.batchesInFlight, "ingest-batches-in-flight", 4, "Batches worked on at once per source, so a batch waiting on a slow receiver does not hold up the next. Env HOOKPOST_INGEST_BATCHES_IN_FLIGHT.")
	fs.BoolVar(&o.firstAttempt, "first-attempt", true, "Make each match's first attempt straight from ingest, writing a WebhookDelivery only when it is needed (a failed attempt, a paused or unready subscription, a busy host). false writes an object for every match and leaves every attempt to the delivery controller. Env HOOKPOST_FIRST_ATTEMPT.")
	fs.StringVar(&o.successObjects, "success-objects", successObjectsNewest, "Which first-attempt successes get a WebhookDelivery object: newest (the newest spec.history.succeededLimit per subscription and flush interval; the rest are counted in status.deliveredWithoutObject) or all (one object per success, two API writes each). Env HOOKPOST_SUCCESS_OBJECTS.")
	fs.DurationVar(&o.successFlushInterval, "success-flush-interval", ingest.DefaultFlushInterval, "How often successes are written per subscription: objects for the newest, counters into status. Env HOOKPOST_SUCCESS_FLUSH_INTERVAL.")
	fs.IntVar(&o.successObjectsPerFlush, "success-objects-per-flush", ingest.DefaultObjectsPerFlush, "Most success objects one flush writes across all subscriptions (newest first, an equal share each); the rest are counted. Env HOOKPOST_SUCCESS_OBJECTS_PER_FLUSH.")
	fs.IntVar(&o.successObjectsRate, "success-objects-per-second", ingest.DefaultObjectsPerSecond, "Most success objects written per subscription and second, averaged over the flush interval (always the newest); negative: only spec.history.succeededLimit bounds them. Env HOOKPOST_SUCCESS_OBJECTS_PER_SECOND.")
	fs.DurationVar(&o.hostWait, "first-attempt-host-wait", ingest.DefaultHostWait, "How long a first attempt waits for its destination host (or namespace) to free a slot, with none coming free, before the match is handed to the delivery controller. Env HOOKPOST_FIRST_ATTEMPT_HOST_WAIT.")
}

// dispatcher returns what ingest hands its matches to, adding the SuccessLog runnable to mgr when it needs one.
func (o *sourceOptions) dispatcher(mgr ctrl.Manager, clk clock.PassiveClock, deps dispatchDeps) (ingest.Dispatcher, error) {
	refusals := ingest.NewRefusals(ingest.RefusalsOptions{Client: mgr.GetClient(), Reader: mgr.GetCache(), Direct: mgr.GetAPIReader(),
		Events: mgr.GetEventRecorder("hookpost-ingest"), Ledger: deps.ledger, Clock: clk})
	caps, err := o.setupCaps(mgr, deps, refusals)
	if err != nil {
		return nil, err
	}
	if !o.firstAttempt {
		return ingest.DeliveryCreator{Client: mgr.GetClient(), Refusals: refusals, Sealer: deps.sealer, Caps: caps}, nil
	}
	fo := ingest.FirstAttemptOptions{
		Client: mgr.GetClient(), Reader: mgr.GetCache(), Secrets: deps.secrets, Sealer: deps.sealer, Sender: deps.sender,
		Ledger: deps.ledger, Refusals: refusals, UserAgent: deps.userAgent, Clock: clk, HostWait: o.hostWait, Caps: caps,
		Breakers: deps.breakers,
	}
	switch o.successObjects {
	case successObjectsNewest:
		fo.Successes = ingest.NewSuccessLog(ingest.SuccessLogOptions{Client: mgr.GetClient(), Direct: mgr.GetAPIReader(), Sealer: deps.sealer,
			Interval: o.successFlushInterval, MaxObjectsPerFlush: o.successObjectsPerFlush, ObjectsPerSecond: o.successObjectsRate})
		if err := mgr.Add(fo.Successes); err != nil {
			return nil, fmt.Errorf("add success log: %w", err)
		}
		o.successLog = fo.Successes
	case successObjectsAll:
	default:
		return nil, fmt.Errorf("--success-objects=%q: use %q or %q", o.successObjects, successObjectsNewest, successObjectsAll)
	}
	return ingest.NewFirstAttempt(fo), nil
}

// setupCaps returns the caps on unfinished deliveries, adding to mgr their refresh (every replica) and, with a
// ledger to park in, the drain (the leader).
func (o *sourceOptions) setupCaps(mgr ctrl.Manager, deps dispatchDeps, refusals *ingest.Refusals) (*ingest.Caps, error) {
	caps := ingest.NewCaps(ingest.CapsOptions{PerSubscription: deps.caps.perSubscription, Total: deps.caps.total,
		Unfinished: deps.unfinished, Parking: deps.parking, Refusals: refusals})
	if err := mgr.Add(caps); err != nil {
		return nil, fmt.Errorf("add unfinished-delivery caps: %w", err)
	}
	if deps.parking == nil {
		return caps, nil
	}
	drain := ingest.NewDrain(ingest.DrainOptions{Client: mgr.GetClient(), Reader: mgr.GetCache(), Parking: deps.parking, Caps: caps,
		Refusals: refusals, Sealer: deps.sealer, Events: mgr.GetEventRecorder("hookpost-drain"),
		EndpointRoom: ingest.EndpointRoom(deps.breakers, deps.sender, clock.RealClock{})})
	if err := mgr.Add(drain); err != nil {
		return nil, fmt.Errorf("add parked-delivery drain: %w", err)
	}
	return caps, nil
}

// setup adds an ingest runnable, and a readiness check, per configured source, and gives replays each source to
// re-read.
func (o *sourceOptions) setup(ctx context.Context, mgr ctrl.Manager, clk clock.PassiveClock, replays *ingest.SourceReplay, deps dispatchDeps) error {
	log := ctrl.Log.WithName("source")
	onReject := func(r source.Rejection) {
		metrics.ObserveRejection(r)
		log.Info("Malformed event set aside", "source", r.Source, "eventID", r.ID, "reason", r.Reason)
	}
	var srcs []source.Source
	if o.postgresDSN != "" {
		var pg *postgres.Source
		err := waitFor(ctx, "the outbox's PostgreSQL", unreachable, func(ctx context.Context) error {
			var err error
			if pg, err = postgres.New(ctx, postgres.Options{
				DSN: o.postgresDSN, Schema: o.postgresSchema, Table: o.postgresTable,
				Retention: o.postgresRetention, ClaimLease: o.postgresClaimLease, OnReject: onReject,
			}); err != nil {
				return fmt.Errorf("postgres source: %w", err)
			}
			if o.postgresMigrate {
				if err := pg.Migrate(ctx); err != nil {
					_ = pg.Close()
					return fmt.Errorf("postgres source: migrate: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		srcs = append(srcs, pg)
		replays.Add(hookpostv1.ReplaySourceOutbox, pg)
	}
	if o.natsURL != "" {
		var ns *natssource.Source
		err := waitFor(ctx, "NATS", unreachable, func(ctx context.Context) error {
			var err error
			if ns, err = natssource.New(ctx, natssource.Options{
				URL: o.natsURL, CredsFile: o.natsCreds, Stream: o.natsStream, SubjectPrefix: o.natsSubjectPrefix,
				CreateStream: o.natsCreateStream, OnReject: onReject,
			}); err != nil {
				return fmt.Errorf("nats source: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		srcs = append(srcs, ns)
		replays.Add(hookpostv1.ReplaySourceJetStream, ns)
	}
	if len(srcs) == 0 {
		return nil
	}
	for _, src := range srcs {
		deps.watermarks.Add(src)
	}
	d, err := o.dispatcher(mgr, clk, deps)
	if err != nil {
		return err
	}
	attemptSlots := 0
	if o.firstAttempt {
		attemptSlots = deps.attemptSlots
	}
	for _, src := range srcs {
		in := ingest.New(src, mgr.GetCache(), d,
			ingest.Options{BatchSize: o.batchSize, Parallelism: o.parallelism, AttemptSlots: attemptSlots,
				BatchesInFlight: o.batchesInFlight, Clock: clk, Ledger: deps.ledger, TenantIsolation: deps.tenantIsolation})
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
