// Command chaos is `make chaos`: it delivers events from both sources while everything around the operator
// fails, and checks that none is lost. It starts real processes (kube-apiserver and etcd, PostgreSQL, an
// in-process NATS server, the operator binary built fresh, and a receiver on loopback), produces -events events
// (half into the PostgreSQL outbox, half into NATS JetStream) paced over -chaos-for, and meanwhile SIGKILLs the
// operator every -kill-min to -kill-max (random, seeded) and restarts PostgreSQL, NATS and kube-apiserver once
// each. The receiver answers the first attempts of some events with a connection reset, a hang past the
// subscription's timeout, a 5xx or a 5xx with a garbage body, chosen per (event, request number) from the seed,
// and 2xx after. Once every event got a 2xx and nothing is left to do, it prints a report and exits non-zero
// when an event was lost or a (subscription, event) pair got more than one WebhookDelivery.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

// Names of the run's namespace and subscription.
const (
	namespace    = "chaos"
	subscription = "chaos"
)

// Subscription settings: a short timeout and retry schedule, so the run drains in minutes. Every event fails at
// most twice at the receiver (failuresByBucket), and the schedule allows five attempts.
var (
	attemptTimeout = 2 * time.Second
	retrySchedule  = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second}
)

// config is the command line.
type config struct {
	events       int
	seed         int64
	chaosFor     time.Duration
	killMin      time.Duration
	killMax      time.Duration
	drainTimeout time.Duration
	keep         bool
	operatorArgs []string
}

func main() {
	var cfg config
	var operatorArgs string
	flag.IntVar(&cfg.events, "events", 20000, "Events to produce, half into the outbox and half into NATS.")
	flag.Int64Var(&cfg.seed, "seed", 0, "Seed of the kill intervals and the receiver's answers; 0 picks one from the clock (printed, to repeat a run).")
	flag.DurationVar(&cfg.chaosFor, "chaos-for", 2*time.Minute, "How long events are produced and the operator killed; PostgreSQL, NATS and kube-apiserver restart at a quarter, half and three quarters of it.")
	flag.DurationVar(&cfg.killMin, "kill-min", 5*time.Second, "Shortest time between two SIGKILLs of the operator.")
	flag.DurationVar(&cfg.killMax, "kill-max", 10*time.Second, "Longest time between two SIGKILLs of the operator.")
	flag.DurationVar(&cfg.drainTimeout, "drain-timeout", 10*time.Minute, "How long to wait, after the chaos, for every event to be delivered before counting the rest as lost.")
	flag.BoolVar(&cfg.keep, "keep", false, "Keep the run's directory (operator log, PostgreSQL data) even when the run passed.")
	flag.StringVar(&operatorArgs, "operator-args", "", "Extra operator flags, space-separated (for example --postgres-claim-lease=10s).")
	flag.Parse()
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if cfg.seed == 0 {
		cfg.seed = time.Now().UnixNano()
	}
	cfg.operatorArgs = strings.Fields(operatorArgs)
	crlog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if !r.passed() {
		os.Exit(1)
	}
}

func (c config) validate() error {
	switch {
	case c.events < 2:
		return fmt.Errorf("-events must be at least 2, got %d", c.events)
	case c.killMin <= 0 || c.killMax < c.killMin:
		return fmt.Errorf("-kill-min (%s) must be positive and at most -kill-max (%s)", c.killMin, c.killMax)
	case c.chaosFor < 4*(postgresDown+apiServerDown):
		return fmt.Errorf("-chaos-for must be at least %s, so the three server restarts fit apart, got %s",
			4*(postgresDown+apiServerDown), c.chaosFor)
	}
	return nil
}

func run(ctx context.Context, cfg config) (result, error) {
	fmt.Printf("Hookpost chaos run: %d events, seed %d, chaos for %s, operator SIGKILLed every %s-%s\n",
		cfg.events, cfg.seed, cfg.chaosFor, cfg.killMin, cfg.killMax)
	dir, err := os.MkdirTemp("", "hookpost-chaos-")
	if err != nil {
		return result{}, err
	}
	var r result
	defer func() {
		if cfg.keep || !r.passed() {
			fmt.Printf("Run directory kept: %s (operator.log, postgres/)\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	r, err = chaosRun(ctx, cfg, dir)
	return r, err
}

func chaosRun(ctx context.Context, cfg config, dir string) (result, error) {
	step("Building the operator")
	binary, err := harness.BuildOperator(dir)
	if err != nil {
		return result{}, err
	}
	step("Starting kube-apiserver and etcd, PostgreSQL and NATS")
	cp, err := harness.StartControlPlane(dir)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = cp.Stop() }()
	pgDir := filepath.Join(dir, "postgres")
	if err := os.MkdirAll(pgDir, 0o755); err != nil {
		return result{}, err
	}
	pg, err := harness.StartPostgresProcess(pgDir)
	if err != nil {
		return result{}, err
	}
	defer pg.Stop()
	pool, err := pgxpool.New(ctx, pg.DSN())
	if err != nil {
		return result{}, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, postgres.DDL("", "")); err != nil {
		return result{}, fmt.Errorf("create the outbox table: %w", err)
	}
	srv, err := harness.StartNATSServer(filepath.Join(dir, "nats"))
	if err != nil {
		return result{}, err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return result{}, fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return result{}, err
	}
	// The stream as the operator creates it, so producing can start before the operator does.
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: natssource.DefaultStream,
		Subjects: []string{natssource.DefaultSubjectPrefix + ">"}, Storage: jetstream.FileStorage,
		Duplicates: natssource.DefaultDuplicateWindow}); err != nil {
		return result{}, fmt.Errorf("create stream: %w", err)
	}

	recv := newReceiver(cfg.seed, attemptTimeout+time.Second)
	defer recv.Close()
	if err := harness.CreateNamespaceForAllTenants(ctx, cp.Client, namespace); err != nil {
		return result{}, err
	}
	sub := fixtures.Subscription(namespace, subscription, recv.URL+"/hooks", fixtures.InsecureHTTP(),
		fixtures.Timeout(attemptTimeout), fixtures.Schedule(retrySchedule...),
		// No delivery is pruned, so the count of objects per event at the end is complete.
		fixtures.HistoryLimits(100000, 100000),
		// Half the events fail once or twice, so ten failures in a row happen often and the circuit opens: with
		// the defaults (30 s open, doubling on a failed probe up to 10 m, then 20 attempts/s) the backlog would
		// outlast the drain timeout. The breaker stays on, parking and draining included, on the schedule's scale.
		fixtures.CircuitBreaker(10, time.Second, 0), fixtures.CircuitMaxOpenFor(5*time.Second))
	if err := cp.Client.Create(ctx, sub); err != nil {
		return result{}, fmt.Errorf("create subscription: %w", err)
	}

	logFile, err := os.Create(filepath.Join(dir, "operator.log"))
	if err != nil {
		return result{}, err
	}
	defer logFile.Close()
	args := append([]string{"--allow-cidr=127.0.0.1/32", "--postgres-dsn=" + pg.DSN(), "--postgres-migrate",
		"--nats-url=" + srv.URL(),
		// One receiver port plays every destination; its timeouts would otherwise hold all 8 slots of one host.
		"--max-attempts-per-host=64"}, cfg.operatorArgs...)
	step("Starting the operator: " + strings.Join(args, " "))
	op, err := harness.StartOperator(binary, cp.KubeconfigPath, logFile, args...)
	if err != nil {
		return result{}, err
	}
	defer op.Stop(30 * time.Second)
	if err := waitReady(ctx, cp, 2*time.Minute); err != nil {
		return result{}, err
	}

	step("Chaos")
	published := make([]string, 0, cfg.events)
	outboxEvents, natsEvents := cfg.events/2, cfg.events-cfg.events/2
	for seq := range outboxEvents {
		published = append(published, outboxEventID(cfg.seed, seq))
	}
	for seq := range natsEvents {
		published = append(published, natsEventID(seq))
	}
	f := &faults{start: time.Now(), rng: rand.New(rand.NewPCG(uint64(cfg.seed), 0)), op: op}
	superviseCtx, stopSupervising := context.WithCancel(ctx)
	supervised := make(chan error, 1)
	go func() {
		supervised <- f.superviseOperator(superviseCtx, f.start.Add(cfg.chaosFor), cfg.killMin, cfg.killMax)
	}()
	var superviseErr error
	stopSupervision := sync.OnceFunc(func() { stopSupervising(); superviseErr = <-supervised })
	defer stopSupervision()

	var outboxPublished, natsPublished atomic.Int64
	// Producing ends a little before the chaos does, so the last events too meet a kill.
	spread := cfg.chaosFor * 9 / 10
	if err := all(ctx,
		func(ctx context.Context) error {
			return produceOutbox(ctx, pool, cfg.seed, outboxEvents, spread, &outboxPublished)
		},
		func(ctx context.Context) error { return produceNATS(ctx, js, natsEvents, spread, &natsPublished) },
		func(ctx context.Context) error { return f.restartServers(ctx, cfg.chaosFor, pg, srv, cp) },
	); err != nil {
		return result{}, err
	}
	if !harness.SleepUntil(ctx, f.start.Add(cfg.chaosFor)) {
		return result{}, ctx.Err()
	}
	f.mu.Lock()
	lastFault := f.lastEnd
	f.mu.Unlock()
	f.logf("chaos over: %d outbox and %d NATS events published; %d of %d delivered so far",
		outboxPublished.Load(), natsPublished.Load(), recv.deliveredCount(published), len(published))

	step("Draining")
	drained, why := waitDrained(ctx, cfg.drainTimeout, recv, published, pool, js, cp)
	settled := time.Since(lastFault)
	if !drained {
		fmt.Printf("  not drained after %s: %s\n", cfg.drainTimeout, why)
	}
	// A graceful stop first, so the counts below include what the operator still had to write.
	stopSupervision()
	if superviseErr != nil {
		return result{}, fmt.Errorf("restart the operator: %w", superviseErr)
	}
	op.Stop(time.Minute)

	r, err := count(ctx, cfg, recv, published, pool, cp, f, lastFault)
	if err != nil {
		return result{}, err
	}
	if drained {
		r.settled = settled
	}
	r.print(os.Stdout)
	return r, nil
}

// waitReady waits until the subscription is Ready, which needs a running operator.
func waitReady(ctx context.Context, cp *harness.ControlPlane, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s := &hookpostv1.WebhookSubscription{}
		err := cp.Client.Get(ctx, clientKey(subscription), s)
		if err == nil && isReady(s) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("subscription %s/%s not Ready within %s (get error %v, conditions %+v)",
				namespace, subscription, timeout, err, s.Status.Conditions)
		}
		if !harness.SleepUntil(ctx, time.Now().Add(200*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// all runs fns side by side and returns the first error, which cancels the others' context.
func all(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

func step(s string) { fmt.Printf("%s %s\n", time.Now().Format("15:04:05"), s) }
