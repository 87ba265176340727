// Command manager runs the Hookpost operator: the WebhookSubscription and WebhookDelivery controllers and, when
// configured, the event sources that turn outbox rows and JetStream messages into WebhookDeliveries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ingest"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/metrics"
	"github.com/hookpost/hookpost/internal/netguard"
	"github.com/hookpost/hookpost/internal/source"
	"github.com/hookpost/hookpost/internal/source/postgres"
	"github.com/hookpost/hookpost/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hookpost:", err)
		os.Exit(1)
	}
}

// options are the manager's flags; each can also be set with the environment variable named in its usage.
type options struct {
	metricsAddr, probeAddr string
	leaderElect            bool
	leaderElectionNS       string
	allowCIDRs             stringList
	denyCIDRs              stringList
	maxConcurrent          int
	maxPerHost             int
	maxPerNamespace        int
	workers                int
	maxRetryAfter          time.Duration
	replay                 controller.ReplayLimits
	kubeQPS                float64
	kubeBurst              int
	tenantIsolation        bool
	cacheTransforms        bool
	watchNamespaces        stringList
	sealSecret             string
	sources                sourceOptions
	ledger                 ledgerOptions
	caps                   capsOptions
}

func run() error {
	var o options
	zapOpts := zap.Options{}
	bindFlags(flag.CommandLine, &o, &zapOpts)
	flag.Parse()
	if err := applyEnv(flag.CommandLine, os.LookupEnv); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	// Parsed before the DDL commands return, so the chart test that runs the manager with --postgres-print-ddl
	// also proves the chart writes the ranges in a form the manager accepts.
	allow, err := netguard.ParseAllowCIDRs(o.allowCIDRs)
	if err != nil {
		return fmt.Errorf("--allow-cidr: %w", err)
	}
	deny, err := netguard.ParseDenyCIDRs(o.denyCIDRs)
	if err != nil {
		return fmt.Errorf("--deny-cidr: %w", err)
	}
	if o.sources.postgresPrintDDL {
		fmt.Print(postgres.DDL(o.sources.postgresSchema, o.sources.postgresTable))
		return nil
	}
	if o.ledger.printDDL {
		fmt.Print(o.ledger.ddl())
		return nil
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if err := o.validateReplay(); err != nil {
		return err
	}
	if err := o.caps.validate(); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(hookpostv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	// Ingest creates a WebhookDelivery per match and the delivery controller patches its status: the API server
	// is the bottleneck, so client-go's default of 20 requests/s would be.
	cfg.QPS, cfg.Burst = float32(o.kubeQPS), o.kubeBurst
	ctx := ctrl.SetupSignalHandler()
	if err := waitFor(ctx, "the Kubernetes API server and Hookpost's CRDs", always, apiServerAnswers(cfg)); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "hookpost.webhooks.hookpost.io",
		LeaderElectionNamespace:       o.leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptr(90 * time.Second),
		Cache:                         controller.WatchNamespaces(controller.CacheOptions(o.cacheTransforms), o.watchNamespaces),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	sender := delivery.NewSender(delivery.SenderOptions{
		Guard:         netguard.New(allow, netguard.WithDeny(deny)),
		MaxConcurrent: o.maxConcurrent,
		MaxPerHost:    o.maxPerHost,
		// One tenant's hanging endpoints hold at most this many: the rest of the global slots keep turning over.
		MaxPerNamespace: o.maxPerNamespace,
	})
	clk := clock.RealClock{}
	breakers := delivery.NewBreakers()
	rec, parking, pruned, err := o.setupLedger(ctx, mgr)
	if err != nil {
		return err
	}
	sealer, err := o.loadSealer(ctx, cfg, scheme)
	if err != nil {
		return err
	}
	// One Sender, one Secrets and one set of circuits serve the first attempt from ingest and the delivery controller's retries.
	secrets := controller.NewSecrets(mgr.GetClient(), mgr.GetAPIReader())
	// WebhookReplays re-read the sources that sources.setup opens below (spec.source).
	replays := ingest.NewSourceReplay(mgr.GetCache(), sealer, o.tenantIsolation)
	// Ordered deliveries ask their source's watermark; the sources, made below, are added to it.
	watermarks := source.NewWatermarks(source.DefaultWatermarkTTL)
	if err := controller.Setup(ctx, mgr, controller.Options{
		Clock: clk, Sender: sender, Secrets: secrets, Ledger: rec, UserAgent: version.UserAgent(),
		MaxRetryAfter: o.maxRetryAfter, DeliveryWorkers: o.workers, TenantIsolation: o.tenantIsolation,
		Sealer: sealer, ReplayLimits: o.replay, Breakers: breakers, Pruned: pruned, Sources: replays, Watermarks: watermarks,
	}); err != nil {
		return err
	}
	backlog, err := controller.WatchRetryBacklog(ctx, mgr.GetCache())
	if err != nil {
		return err
	}
	unfinished, err := ingest.WatchUnfinished(ctx, mgr.GetCache(), clk)
	if err != nil {
		return err
	}
	metrics.Register(crmetrics.Registry, sender, backlog.Count, func() float64 { return float64(unfinished.Total()) }, breakers)
	if err := o.sources.setup(ctx, mgr, clk, replays, dispatchDeps{sender: sender, secrets: secrets, sealer: sealer, ledger: rec, userAgent: version.UserAgent(),
		tenantIsolation: o.tenantIsolation, attemptSlots: o.maxConcurrent,
		unfinished: unfinished, parking: parking, caps: o.caps, breakers: breakers, watermarks: watermarks}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	log.Info("Starting manager", "version", version.Version, "allowCIDRs", o.allowCIDRs.String(), "denyCIDRs", o.denyCIDRs.String(),
		"tenantIsolation", o.tenantIsolation, "watchNamespaces", o.watchNamespaces.String())
	err = mgr.Start(ctx)
	finalFlush(o.sources.successLog, rec)
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

// finalFlushTimeout bounds the writes after the manager stopped.
const finalFlushTimeout = 15 * time.Second

// finalFlush writes what was recorded while the manager stopped, after the runnables' own last writes: attempts
// in flight finish during shutdown, and the delivery controller records its last attempts after the ledger
// writer and the success log have stopped.
func finalFlush(successes *ingest.SuccessLog, rec ledger.Recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), finalFlushTimeout)
	defer cancel()
	log := ctrl.Log.WithName("shutdown")
	if successes != nil {
		if err := successes.Flush(ctx); err != nil {
			log.Error(err, "Succeeded deliveries not counted at shutdown")
		}
	}
	if err := ledger.Flush(ctx, rec); err != nil {
		log.Error(err, "Ledger rows not written at shutdown")
	}
}

// bindFlags defines the manager's flags on fs. Each can also be set with the environment variable its usage
// names (see applyEnv), for the Helm chart.
func bindFlags(fs *flag.FlagSet, o *options, zapOpts *zap.Options) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it. Env HOOKPOST_METRICS_BIND_ADDRESS.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz. Env HOOKPOST_HEALTH_PROBE_BIND_ADDRESS.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader for the controllers (retries, pruning); every replica ingests and makes first attempts. Env HOOKPOST_LEADER_ELECT.")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's). Env HOOKPOST_LEADER_ELECTION_NAMESPACE.")
	fs.Var(&o.allowCIDRs, "allow-cidr", "A destination range the SSRF guard allows although it is private, loopback or link-local (repeatable, or comma-separated). Env HOOKPOST_ALLOW_CIDRS.")
	fs.Var(&o.denyCIDRs, "deny-cidr", "A destination range the SSRF guard always refuses, even inside an --allow-cidr range (repeatable, or comma-separated). Env HOOKPOST_DENY_CIDRS.")
	fs.IntVar(&o.maxConcurrent, "max-concurrent-attempts", 64, "HTTP attempts in flight at once. Env HOOKPOST_MAX_CONCURRENT_ATTEMPTS.")
	fs.IntVar(&o.maxPerHost, "max-attempts-per-host", 8, "HTTP attempts in flight per destination host, so one slow endpoint cannot starve others. Env HOOKPOST_MAX_ATTEMPTS_PER_HOST.")
	fs.IntVar(&o.maxPerNamespace, "max-attempts-per-namespace", 0, "HTTP attempts in flight per subscription namespace, so one tenant's slow or hanging endpoints, however many, cannot take every global slot; 0 means half of --max-concurrent-attempts. Env HOOKPOST_MAX_ATTEMPTS_PER_NAMESPACE.")
	fs.IntVar(&o.workers, "delivery-workers", 64, "WebhookDeliveries reconciled at once. Env HOOKPOST_DELIVERY_WORKERS.")
	fs.DurationVar(&o.maxRetryAfter, "max-retry-after", time.Hour, "Cap on a receiver's Retry-After. Env HOOKPOST_MAX_RETRY_AFTER.")
	fs.DurationVar(&o.replay.Interval, "replay-interval", controller.DefaultReplayInterval, "Least time between two replays of one delivery; replays asked for sooner wait, merged into one. Env HOOKPOST_REPLAY_INTERVAL.")
	fs.Float64Var(&o.replay.PerMinute, "replay-rate", controller.DefaultReplayPerMinute, "Replays per minute per subscription (a token bucket of --replay-burst); more wait, none are dropped. Env HOOKPOST_REPLAY_RATE.")
	fs.IntVar(&o.replay.Burst, "replay-burst", controller.DefaultReplayBurst, "Replays a subscription may send at once before --replay-rate paces them. Env HOOKPOST_REPLAY_BURST.")
	fs.StringVar(&o.sealSecret, "seal-secret", "", "Secret namespace/name holding the key the operator seals its deliveries with (created if missing; every replica shares it). Default: "+controller.DefaultSealSecretName+" in the pod's namespace. Env HOOKPOST_SEAL_SECRET.")
	fs.Float64Var(&o.kubeQPS, "kube-api-qps", 500, "Requests per second to the Kubernetes API. Env HOOKPOST_KUBE_API_QPS.")
	fs.IntVar(&o.kubeBurst, "kube-api-burst", 1000, "Burst of requests to the Kubernetes API. Env HOOKPOST_KUBE_API_BURST.")
	fs.BoolVar(&o.tenantIsolation, "tenant-isolation", true, "Deliver an event only to subscriptions in namespaces granted its tenant by the namespace annotation "+hookpostv1.AnnotationTenants+" (tenant ids, comma-separated, or * for all tenants and events without one). Off only by explicit choice. Env HOOKPOST_TENANT_ISOLATION.")
	fs.BoolVar(&o.cacheTransforms, "cache-transforms", true, "Keep managedFields, last-applied-configuration and finished deliveries' spec.data out of the cache (false only to measure what they cost, as make bench does). Env HOOKPOST_CACHE_TRANSFORMS.")
	fs.Var(&o.watchNamespaces, "watch-namespaces", "Namespaces whose subscriptions, deliveries and Secrets the operator watches (comma-separated, or repeated); empty watches the whole cluster. With the chart's rbac.scope=namespaced the operator holds Roles in these namespaces only. Env HOOKPOST_WATCH_NAMESPACES.")
	o.sources.bind(fs)
	o.ledger.bind(fs)
	o.caps.bind(fs)
	zapOpts.BindFlags(fs)
}

// setupLedger opens the delivery ledger and adds its writer to mgr, and returns it with the tables of parked and
// pruned deliveries next to it; ledger.Discard and nils when none is configured. A ledger in the outbox's database
// is migrated with the outbox (--postgres-migrate).
func (o *options) setupLedger(ctx context.Context, mgr ctrl.Manager) (ledger.Recorder, ledger.Parking, ledger.PrunedStore, error) {
	w, err := o.ledger.open(ctx, o.sources.postgresDSN, o.sources.postgresMigrate)
	if err != nil || w == nil {
		return ledger.Discard, nil, nil, err
	}
	if err := mgr.Add(w); err != nil {
		w.Close()
		return ledger.Discard, nil, nil, fmt.Errorf("add ledger writer: %w", err)
	}
	ctrl.Log.WithName("setup").Info("Delivery ledger configured", "table", o.ledger.schema+"."+o.ledger.table)
	return w, w.Parking(), w.Pruned(), nil
}

func ptr[T any](v T) *T { return &v }

// stringList is a repeatable, comma-separable flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// serviceAccountNamespaceFile holds the pod's namespace in a cluster (a variable for tests).
var serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// loadSealer reads (or creates) the seal key with a client of its own: the manager's client reads from a cache that
// has not started yet.
func (o *options) loadSealer(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (*controller.Sealer, error) {
	ns, name, err := o.sealSecretName()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("client for the seal key: %w", err)
	}
	key, err := controller.LoadSealKey(ctx, c, ns, name)
	if err != nil {
		return nil, fmt.Errorf("--seal-secret: %w", err)
	}
	ctrl.Log.WithName("setup").Info("Sealing deliveries", "sealSecret", ns+"/"+name)
	return controller.NewSealer(key), nil
}

// sealSecretName is --seal-secret, or its default: the pod's namespace (else the leader election namespace, else
// default, for an operator run outside a cluster).
func (o *options) sealSecretName() (namespace, name string, err error) {
	if o.sealSecret != "" {
		ns, n, ok := strings.Cut(o.sealSecret, "/")
		if !ok || ns == "" || n == "" {
			return "", "", fmt.Errorf("--seal-secret=%q: want namespace/name, such as hookpost-system/%s", o.sealSecret, controller.DefaultSealSecretName)
		}
		return ns, n, nil
	}
	if raw, err := os.ReadFile(serviceAccountNamespaceFile); err == nil && strings.TrimSpace(string(raw)) != "" {
		return strings.TrimSpace(string(raw)), controller.DefaultSealSecretName, nil
	}
	if o.leaderElectionNS != "" {
		return o.leaderElectionNS, controller.DefaultSealSecretName, nil
	}
	return "default", controller.DefaultSealSecretName, nil
}

// validateReplay refuses replay limits that would disable them or stop every replay.
func (o *options) validateReplay() error {
	if o.replay.Interval <= 0 || o.replay.PerMinute <= 0 || o.replay.Burst < 1 {
		return fmt.Errorf("--replay-interval=%s, --replay-rate=%g, --replay-burst=%d: each must be positive (the defaults are %s, %d and %d)",
			o.replay.Interval, o.replay.PerMinute, o.replay.Burst, controller.DefaultReplayInterval, controller.DefaultReplayPerMinute, controller.DefaultReplayBurst)
	}
	return nil
}
