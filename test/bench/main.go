// Command bench is `make bench`'s end-to-end benchmark: it starts real processes (kube-apiserver and etcd,
// PostgreSQL, NATS, the operator binary built fresh, a receiver that verifies signatures) and, for each source and
// each dispatch mode of the operator (the fast path, where ingest makes the first attempt, and object-per-delivery),
// runs three scenarios with a fresh operator each: saturation (a backlog of events for one subscription), a paced
// stream (a fixed event rate, for latency) and fan-out (many subscriptions matching every event); in fast mode also
// the ordering pair (keyed events to a receiver failing at random, with spec.ordering and without). For each run it
// measures deliveries per second, latency from insert to receipt, API-server writes per delivery, the CPU time of
// the operator, kube-apiserver, etcd and PostgreSQL per delivery and their peak memory; after saturation with the
// outbox it counts each event's success rows in the delivery ledger. It then measures two ceilings on the same
// machine, a plain HTTP client posting the same signed bodies and a plain API client writing the same objects.
// Last, the memory scenario (memory.go) creates 10,000 subscriptions and 50,000 retained finished deliveries and
// reports the operator's RSS with its cache transforms on and off. It reports; it never passes or fails on time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/hookpost/hookpost/test/harness"
)

// config is the command line.
type config struct {
	events    int // saturation events
	sources   []string
	modes     []mode
	producers int
	pacedRate int
	pacedFor  time.Duration
	// The starvation runs (fast mode): paced events alone, then beside hangingEndpoints that never answer, then beside as many that answer 503.
	hangingEndpoints int
	hangingRate      int
	hangingFor       time.Duration
	fanoutSubs       int
	fanoutEvents     int
	fanoutModes      []mode
	ceilingWorkers   int
	timeout          time.Duration
	operatorArgs     []string // appended to every run's operator command line
	// The ordering runs (fast mode): orderedEvents over orderedKeys keys, the receiver failing orderedFailPercent %.
	orderedEvents, orderedKeys, orderedFailPercent int
	// The memory scenario: subscriptions and retained finished deliveries at rest; 0 subscriptions skips it.
	memorySubs       int
	memoryDeliveries int
	memoryWorkers    int
	memoryOnly       bool
}

func main() {
	var cfg config
	var sourcesFlag, modesFlag, fanoutModesFlag, operatorArgsFlag string
	flag.IntVar(&cfg.events, "n", 10000, "Events of the saturation run (one subscription).")
	flag.StringVar(&sourcesFlag, "sources", "postgres", "Sources to measure, comma-separated: postgres, nats. Each source runs every scenario in every mode.")
	flag.StringVar(&modesFlag, "modes", "fast,objects", "Operator modes to measure, comma-separated: fast (--first-attempt=true), objects (--first-attempt=false).")
	flag.IntVar(&cfg.producers, "producers", 16, "Concurrent producers; each outbox producer inserts one row per transaction.")
	flag.IntVar(&cfg.pacedRate, "paced-rate", 1000, "Events per second of the paced run.")
	flag.DurationVar(&cfg.pacedFor, "paced-for", 20*time.Second, "Length of the paced run; 0 skips it.")
	flag.IntVar(&cfg.hangingEndpoints, "hanging-endpoints", 8, "Endpoints of another namespace that answer 200 at once (beside-answering), never answer (beside-hanging), then answer 503 (beside-failing), beside a paced run also measured alone (fast mode); 0 skips these runs.")
	flag.IntVar(&cfg.hangingRate, "hanging-rate", 100, "Events per second of the runs beside hanging endpoints (each event also becomes a WebhookDelivery per hanging endpoint).")
	flag.DurationVar(&cfg.hangingFor, "hanging-for", 20*time.Second, "Length of the runs beside hanging endpoints.")
	flag.IntVar(&cfg.fanoutSubs, "fanout-subscriptions", 100, "Subscriptions matching every event of the fan-out run; 0 skips it.")
	flag.IntVar(&cfg.fanoutEvents, "fanout-events", 1000, "Events of the fan-out run.")
	flag.StringVar(&fanoutModesFlag, "fanout-modes", "fast", "Modes that run the fan-out scenario, comma-separated: in objects mode 100,000 deliveries take many minutes.")
	flag.IntVar(&cfg.orderedEvents, "ordered-events", 10000, "Events of the ordered and unordered runs (fast mode), one producer; 0 skips them.")
	flag.IntVar(&cfg.orderedKeys, "ordered-keys", 100, "Keys the ordered runs' events are spread over (event seq has key seq % keys).")
	flag.IntVar(&cfg.orderedFailPercent, "ordered-fail-percent", 10, "Share of the ordered runs' attempts the receiver answers with a 503, at random.")
	flag.IntVar(&cfg.ceilingWorkers, "ceiling-workers", 64, "Concurrent workers of the HTTP and API ceilings.")
	flag.DurationVar(&cfg.timeout, "timeout", 30*time.Minute, "Give up on a run after this long.")
	flag.IntVar(&cfg.memorySubs, "memory-subscriptions", 10000, "Subscriptions of the memory scenario; 0 skips it.")
	flag.IntVar(&cfg.memoryDeliveries, "memory-deliveries", 50000, "Retained finished deliveries of the memory scenario, spread over its subscriptions.")
	flag.IntVar(&cfg.memoryWorkers, "memory-workers", 16, "Concurrent API clients creating the memory scenario's objects.")
	flag.BoolVar(&cfg.memoryOnly, "memory-only", false, "Run only the memory scenario (no sources, modes or ceilings).")
	flag.StringVar(&operatorArgsFlag, "operator-args", "", "Extra operator flags for every run, space-separated (for example --max-attempts-per-host=32).")
	flag.Parse()
	var err error
	if cfg.sources, err = parseSources(sourcesFlag); err == nil {
		cfg.modes, err = parseModes("-modes", modesFlag)
	}
	if err == nil && cfg.memoryOnly && cfg.memorySubs <= 0 {
		err = errors.New("-memory-only needs -memory-subscriptions above 0")
	}
	if err == nil && cfg.memorySubs > 0 && cfg.memoryDeliveries < 0 {
		err = errors.New("-memory-deliveries: give 0 or more")
	}
	if err == nil && len(cfg.modes) == 0 {
		err = errors.New("-modes: name at least one mode")
	}
	if err == nil {
		cfg.fanoutModes, err = parseModes("-fanout-modes", fanoutModesFlag)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	cfg.operatorArgs = strings.Fields(operatorArgsFlag)
	// The plain clients of the ceilings log through controller-runtime; nothing they say belongs in the report.
	crlog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseSources(s string) ([]string, error) {
	sources := strings.Split(s, ",")
	for _, src := range sources {
		if src != "postgres" && src != "nats" {
			return nil, fmt.Errorf("-sources: unknown source %q: use postgres, nats or both", src)
		}
	}
	return sources, nil
}

func run(ctx context.Context, cfg config) error {
	fmt.Printf("Hookpost end-to-end benchmark: sources %s, modes %s, %d CPUs, %s\n",
		strings.Join(cfg.sources, ","), modeNames(cfg.modes), runtime.NumCPU(), runtime.Version())
	dir, err := os.MkdirTemp("", "hookpost-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step("Building the operator")
	binary, err := harness.BuildOperator(dir)
	if err != nil {
		return err
	}
	step("Starting kube-apiserver and etcd")
	cp, err := harness.StartControlPlane(dir)
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	controlPlane, err := controlPlaneProcesses(cp)
	if err != nil {
		return err
	}
	metrics, err := newMetricsReader(cp.Config)
	if err != nil {
		return err
	}
	recv := newReceiver()
	defer recv.Close()
	b := &bench{ctx: ctx, cfg: cfg, dir: dir, binary: binary, cp: cp, metrics: metrics, recv: recv,
		shared: append(controlPlane, benchProcess())}

	if cfg.memoryOnly {
		mem, err := b.measureMemory()
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		reportMemory(os.Stdout, mem)
		return nil
	}
	var results []modeResult
	for _, name := range cfg.sources {
		r, err := b.measureSource(name)
		if err != nil {
			return err
		}
		results = append(results, r...)
	}

	step(fmt.Sprintf("HTTP ceiling: a plain client posting %d signed bodies with %d workers", cfg.events, cfg.ceilingWorkers))
	httpRate, err := httpCeiling(ctx, recv, cfg.events, cfg.ceilingWorkers)
	if err != nil {
		return fmt.Errorf("http ceiling: %w", err)
	}
	step(fmt.Sprintf("API ceiling: a plain client creating %d WebhookDeliveries and patching their status with %d workers", cfg.events, cfg.ceilingWorkers))
	apiRate, err := apiCeiling(ctx, cp, cfg.events, cfg.ceilingWorkers)
	if err != nil {
		return fmt.Errorf("api ceiling: %w", err)
	}
	var mem *memoryRun
	if cfg.memorySubs > 0 {
		if mem, err = b.measureMemory(); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	report(os.Stdout, cfg, results, ceilings{http: httpRate, api: apiRate, workers: cfg.ceilingWorkers})
	if mem != nil {
		reportMemory(os.Stdout, mem)
	}
	return nil
}

// measureSource runs every mode of cfg against one source.
func (b *bench) measureSource(name string) ([]modeResult, error) {
	src, stop, err := b.startSource(name)
	if err != nil {
		return nil, err
	}
	defer stop()
	var results []modeResult
	for _, m := range b.cfg.modes {
		r, err := b.measureMode(src, m)
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", name, m.name, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// startSource starts the server a source needs for the whole bench and returns the source and how to stop it.
func (b *bench) startSource(name string) (eventSource, func(), error) {
	switch name {
	case "postgres":
		step("Starting PostgreSQL")
		pgDir := filepath.Join(b.dir, "postgres")
		if err := os.MkdirAll(pgDir, 0o755); err != nil {
			return nil, nil, err
		}
		pg, err := harness.StartPostgresProcess(pgDir)
		if err != nil {
			return nil, nil, err
		}
		return &outboxSource{pg: pg, producers: b.cfg.producers}, pg.Stop, nil
	default:
		return &natsSource{dir: b.dir}, func() {}, nil
	}
}

func step(s string) { fmt.Printf("  %s %s\n", time.Now().Format("15:04:05"), s) }
