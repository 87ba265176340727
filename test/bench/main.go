// Command bench is `make bench`'s end-to-end benchmark: it starts real processes (kube-apiserver and etcd,
// PostgreSQL, NATS, the operator binary built fresh, a receiver that verifies signatures), pushes N events through
// each source and measures deliveries per second, latency from insert to receipt, API-server writes per delivery
// and the operator's peak memory and CPU. It then measures two ceilings on the same machine, a plain HTTP client
// posting the same signed bodies and a plain API client writing the same objects, and prints how close the
// operator gets to each. It reports; it never passes or fails on time.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/hookpost/hookpost/test/harness"
)

// defaultEvents is -n's default: at about 200 deliveries/s on a shared 2-core machine, 20,000 take under two
// minutes per source.
const defaultEvents = 20000

func main() {
	n := flag.Int("n", defaultEvents, "Events per source.")
	sources := flag.String("sources", "postgres,nats", "Sources to measure, comma-separated: postgres, nats.")
	workers := flag.Int("ceiling-workers", 64, "Concurrent workers of the HTTP and API ceilings.")
	timeout := flag.Duration("timeout", 20*time.Minute, "Give up on a source after this long.")
	flag.Parse()
	// The plain clients of the ceilings log through controller-runtime; nothing they say belongs in the report.
	crlog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *n, strings.Split(*sources, ","), *workers, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int, sources []string, workers int, timeout time.Duration) error {
	for _, s := range sources {
		if s != "postgres" && s != "nats" {
			return fmt.Errorf("-sources: unknown source %q: use postgres, nats or both", s)
		}
	}
	fmt.Printf("Hookpost end-to-end benchmark: %d events per source, sources %s, %d CPUs, %s\n",
		n, strings.Join(sources, ","), runtime.NumCPU(), runtime.Version())
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
	recv := newReceiver()
	defer recv.Close()

	w := world{ctx: ctx, dir: dir, binary: binary, cp: cp, recv: recv, n: n, timeout: timeout}
	var results []result
	for _, s := range sources {
		var r result
		switch s {
		case "postgres":
			step("Starting PostgreSQL")
			pgDir := filepath.Join(dir, "postgres")
			if err := os.MkdirAll(pgDir, 0o755); err != nil {
				return err
			}
			pg, err := harness.StartPostgresProcess(pgDir)
			if err != nil {
				return err
			}
			r, err = w.measurePostgres(pg)
			pg.Stop()
			if err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
		case "nats":
			step("Starting NATS")
			srv, err := harness.StartNATSServer(filepath.Join(dir, "nats"))
			if err != nil {
				return err
			}
			r, err = w.measureNATS(srv)
			srv.Shutdown()
			if err != nil {
				return fmt.Errorf("nats: %w", err)
			}
		}
		results = append(results, r)
	}

	step(fmt.Sprintf("HTTP ceiling: a plain client posting %d signed bodies with %d workers", n, workers))
	httpRate, err := httpCeiling(ctx, recv, n, workers)
	if err != nil {
		return fmt.Errorf("http ceiling: %w", err)
	}
	step(fmt.Sprintf("API ceiling: a plain client creating %d WebhookDeliveries and patching their status with %d workers", n, workers))
	apiRate, err := apiCeiling(ctx, cp, n, workers)
	if err != nil {
		return fmt.Errorf("api ceiling: %w", err)
	}
	report(os.Stdout, n, results, httpRate, apiRate, workers)
	return nil
}

func step(s string) { fmt.Printf("  %s %s\n", time.Now().Format("15:04:05"), s) }

// result is what one source's run measured.
type result struct {
	source              string
	operatorArgs        []string
	elapsed             time.Duration
	p50, p95, p99, pmax time.Duration
	requests, badSig    int
	writes              deliveryWrites
	peakRSS             int64
	cpu                 time.Duration
}

func (r result) rate(n int) float64 { return float64(n) / r.elapsed.Seconds() }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func report(out *os.File, n int, results []result, httpRate, apiRate float64, workers int) {
	fmt.Fprintf(out, "\nOperator flags per source:\n")
	for _, r := range results {
		fmt.Fprintf(out, "  %-8s %s\n", r.source, strings.Join(r.operatorArgs, " "))
	}
	fmt.Fprintf(out, "\nEnd to end, %d events per source, one subscription (Envelope, HMACSHA256Hex), receiver on loopback:\n\n", n)
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "source\tdeliveries/s\telapsed\tp50\tp95\tp99\tmax\trequests\tbad sigs\tAPI writes/delivery\tcreates\tstatus patches\tother writes\tdeletes\tpeak RSS MiB\tCPU s\tCPU ms/delivery\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.2f\t\n",
			r.source, r.rate(n), r.elapsed.Round(100*time.Millisecond),
			r.p50.Round(time.Millisecond), r.p95.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.pmax.Round(time.Millisecond),
			r.requests, r.badSig, r.writes.writes()/float64(n), r.writes.creates, r.writes.statusPatches, r.writes.otherWrites, r.writes.deletes,
			float64(r.peakRSS)/(1<<20), r.cpu.Seconds(), float64(r.cpu.Milliseconds())/float64(n))
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "\n  elapsed: first event produced to last distinct event received. Latency: data.sent_at_ns to first receipt;\n"+
		"  the whole backlog is produced at once, so it is mostly queueing. API writes: apiserver_request_total for\n"+
		"  webhookdeliveries (POST, PATCH, PUT) over the run; deletes are history pruning (informational).\n")
	fmt.Fprintf(out, "\nCeilings on this machine, %d workers:\n", workers)
	fmt.Fprintf(out, "  HTTP: plain client posting the same signed bodies to the same receiver   %8.0f requests/s\n", httpRate)
	fmt.Fprintf(out, "  API:  plain client creating WebhookDeliveries + patching their status    %8.0f objects/s (%.0f writes/s)\n", apiRate, 2*apiRate)
	fmt.Fprintf(out, "\nRatios:\n")
	for _, r := range results {
		fmt.Fprintf(out, "  %-8s end-to-end / HTTP ceiling = %.3f   end-to-end / API ceiling = %.3f\n",
			r.source, r.rate(n)/httpRate, r.rate(n)/apiRate)
	}
}

// sortedLatencies sorts a copy.
func sortedLatencies(l []time.Duration) []time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	return s
}
