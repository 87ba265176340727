// Command demo runs Hookpost end to end on one machine without a cluster: a local kube-apiserver and etcd with
// the CRDs, an event source (an embedded NATS JetStream server, or a throwaway PostgreSQL outbox with
// DEMO_SOURCE=postgres), the operator as a child process, and a receiver on 127.0.0.1 that verifies signatures
// the way product doc 000 says. It applies demo subscriptions, publishes the docs' sample events, waits until
// every delivery settles, shows them with kubectl, and keeps running until Ctrl-C, when it stops everything it
// started. DEMO_EXIT_AFTER_SETTLE=1 stops right after the table. `make demo` builds what it needs and runs it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/hookpost/hookpost/test/harness"
)

// Environment variables the demo reads.
const (
	envSource          = "DEMO_SOURCE"            // nats (default) or postgres
	envExitAfterSettle = "DEMO_EXIT_AFTER_SETTLE" // 1: exit once the deliveries settled and the table is printed
	envManager         = "HOOKPOST_DEMO_MANAGER"  // the manager binary; default bin/manager, else built
)

func main() {
	ctrllog.SetLogger(logr.Discard()) // the client's own warnings would only clutter the story
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	exitAfterSettle, _ := strconv.ParseBool(os.Getenv(envExitAfterSettle))
	kind := os.Getenv(envSource)
	if kind == "" {
		kind = "nats"
	}
	if err := run(ctx, newPrinter(os.Stdout), kind, exitAfterSettle); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// printer serialises output from the main flow and the receiver's handler.
type printer struct {
	mu  sync.Mutex
	out io.Writer
}

func newPrinter(out io.Writer) *printer { return &printer{out: out} }

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format+"\n", args...)
}

// step prints what is starting and returns a function that prints how long it took.
func (p *printer) step(format string, args ...any) func(detail string) {
	start := time.Now()
	p.say("▸ "+format, args...)
	return func(detail string) {
		if detail != "" {
			detail = ": " + detail
		}
		p.say("  done in %.1fs%s", time.Since(start).Seconds(), detail)
	}
}

// teardown stops what the demo started, last started first.
type teardown struct {
	names []string
	funcs []func()
}

func (t *teardown) add(name string, f func()) {
	t.names = append(t.names, name)
	t.funcs = append(t.funcs, f)
}

func (t *teardown) run(p *printer) {
	if len(t.funcs) == 0 {
		return
	}
	start := time.Now()
	p.say("▸ Stopping everything the demo started")
	for i := len(t.funcs) - 1; i >= 0; i-- {
		t.funcs[i]()
	}
	p.say("  stopped %d things in %.1fs; bye", len(t.funcs), time.Since(start).Seconds())
}

func run(ctx context.Context, p *printer, kind string, exitAfterSettle bool) (err error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	var stops teardown
	defer stops.run(p)

	tmp, err := os.MkdirTemp("", "hookpost-demo-")
	if err != nil {
		return err
	}
	stops.add("temporary files", func() { _ = os.RemoveAll(tmp) })
	p.say("Hookpost demo: event source %s, everything on 127.0.0.1, files in %s", kind, tmp)

	done := p.step("Starting kube-apiserver and etcd with the Hookpost CRDs")
	cp, err := harness.StartControlPlane(tmp)
	if err != nil {
		return err
	}
	stops.add("control plane", func() { _ = cp.Stop() })
	done("")

	done = p.step("Starting the event source")
	src, err := startSource(kind, tmp)
	if err != nil {
		return err
	}
	stops.add("event source", src.stop)
	done(src.describe())

	rcv, err := startReceiver(p.say)
	if err != nil {
		return err
	}
	stops.add("receiver", func() { _ = rcv.Close() })
	p.say("▸ Sample receiver listening on %s", rcv.URL())

	binary, err := managerBinary(root, tmp, p)
	if err != nil {
		return err
	}
	done = p.step("Starting the operator (%s)", relativeToCwd(binary))
	logPath := filepath.Join(tmp, "operator.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	args := append([]string{"--allow-cidr=127.0.0.0/8"}, src.operatorArgs()...)
	op, err := harness.StartOperator(binary, cp.KubeconfigPath, logFile, args...)
	if err != nil {
		_ = logFile.Close()
		return err
	}
	stops.add("operator", func() { op.Stop(30 * time.Second); _ = logFile.Close() })
	done(fmt.Sprintf("pid %d, log %s", op.Pid(), logPath))
	failed := func(err error) error { return operatorFailure(err, op.Pid(), logPath) }

	f := &flow{ctx: ctx, p: p, cp: cp, rcv: rcv, src: src, operatorPid: op.Pid(), subscriptions: demoSubscriptions(), events: sampleEvents()}
	for _, phase := range []func() error{f.grantTenants, f.applySubscriptions, f.publishAndSettle} {
		if err := phase(); err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: stop quietly
			}
			return failed(err)
		}
	}
	f.printTable()
	f.printNextSteps(root, exitAfterSettle)
	if exitAfterSettle {
		return nil
	}
	<-ctx.Done()
	p.say("")
	return nil
}

// managerBinary is $HOOKPOST_DEMO_MANAGER, else bin/manager (make build), else a fresh build.
func managerBinary(root, tmp string, p *printer) (string, error) {
	if b := os.Getenv(envManager); b != "" {
		return b, nil
	}
	if b := filepath.Join(root, "bin", "manager"); isFile(b) {
		return b, nil
	}
	done := p.step("Building the operator (bin/manager is missing; `make build` saves this step)")
	b, err := harness.BuildOperator(tmp)
	if err != nil {
		return "", err
	}
	done("")
	return b, nil
}

func isFile(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir()
}

func relativeToCwd(path string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && len(rel) < len(path) {
			return rel
		}
	}
	return path
}

// operatorFailure adds the operator's state and its last log lines to err.
func operatorFailure(err error, pid int, logPath string) error {
	state := "still running"
	if syscall.Kill(pid, 0) != nil {
		state = "exited"
	}
	tail, _ := os.ReadFile(logPath)
	if len(tail) > 3000 {
		tail = tail[len(tail)-3000:]
	}
	return fmt.Errorf("%w\nthe operator (pid %d) has %s; the end of its log:\n%s", err, pid, state, tail)
}
