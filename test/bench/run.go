package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hookpost/hookpost/internal/ingest"
	"github.com/hookpost/hookpost/test/harness"
)

// bench is what every run shares: the flags, the processes that outlive a run, and the receiver.
type bench struct {
	ctx     context.Context
	cfg     config
	dir     string
	binary  string
	cp      *harness.ControlPlane
	metrics metricsReader
	recv    *receiver
	// shared are the processes measured in every run besides the operator and the source's servers.
	shared []measured
}

// baseOperatorArgs are the flags every run passes besides the mode's, the source's and -operator-args: the
// receiver is on loopback. Everything else is the operator's default, so the figures are what a user gets out
// of the box.
var baseOperatorArgs = []string{"--allow-cidr=127.0.0.1/32"}

// settleQuiet is how long the API server must count no new write before a run's writes are taken as finished:
// twice the fast path's default --success-flush-interval, so its last flush is not missed.
const settleQuiet = 2 * ingest.DefaultFlushInterval

// measureMode runs every scenario of cfg in one mode.
func (b *bench) measureMode(src eventSource, m mode) (modeResult, error) {
	res := modeResult{source: src.name(), mode: m}
	for _, sc := range b.cfg.scenarios(m) {
		r, err := b.measure(src, m, sc)
		if err != nil {
			return modeResult{}, fmt.Errorf("%s: %w", sc.name, err)
		}
		res.runs = append(res.runs, r)
	}
	return res, nil
}

// measure runs one scenario with a fresh source instance, namespace and operator process.
func (b *bench) measure(src eventSource, m mode, sc scenario) (runResult, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.timeout)
	defer cancel()
	name := strings.Join([]string{src.name(), m.name, sc.name}, "-")
	in, err := src.open(ctx, name)
	if err != nil {
		return runResult{}, err
	}
	defer in.close()
	ns := "bench-" + name
	defer b.unsubscribe(context.WithoutCancel(ctx), ns)
	routes, err := b.subscribe(ctx, ns, sc.subscriptions, sc.events, sc.subscriptionOptions()...)
	if err != nil {
		return runResult{}, err
	}
	for _, rt := range routes {
		b.recv.keyed(rt, sc.keys, sc.failPercent)
	}
	if sc.hanging > 0 {
		stopHanging, err := b.subscribeHanging(ctx, ns+"-hanging", sc.hanging, sc.answer)
		defer stopHanging()
		if err != nil {
			return runResult{}, err
		}
	}
	op, err := b.startOperator(name, slices.Concat(baseOperatorArgs, m.operatorArgs(), in.operatorArgs(), b.cfg.operatorArgs))
	if err != nil {
		return runResult{}, err
	}
	defer op.stop()
	if err := b.waitReady(ctx, ns, sc.subscriptions); err != nil {
		return runResult{}, err
	}
	if sc.hanging > 0 {
		if err := b.waitReady(ctx, ns+"-hanging", sc.hanging); err != nil {
			return runResult{}, err
		}
	}
	procs := slices.Concat(b.shared, in.processes(), []measured{{name: processOperator, pids: onePid(op.Pid())}})
	r, err := b.deliver(ctx, sc, in, routes, procs, op.logPath)
	if err != nil {
		return runResult{}, err
	}
	r.command = op.commandLine()
	// The ledger is read once the operator has stopped and so flushed its writer.
	op.stop()
	if sc.checkLedger {
		if r.ledger, err = in.checkLedger(ctx, ns); err != nil {
			return runResult{}, err
		}
	}
	return r, nil
}

// deliver produces the scenario's events and measures until every delivery arrived and the API writes stopped.
func (b *bench) deliver(ctx context.Context, sc scenario, in sourceRun, routes []*route, procs []measured, logPath string) (runResult, error) {
	begin, err := b.startWindow(ctx, procs)
	if err != nil {
		return runResult{}, err
	}
	pace := "as fast as the producers can"
	if sc.rate > 0 {
		pace = fmt.Sprintf("at %.0f/s", sc.rate)
	}
	producers := b.cfg.producers
	if sc.producers > 0 {
		producers = sc.producers
	}
	step(fmt.Sprintf("Producing %d events %s with %d producers, %d subscription(s)", sc.events, pace, producers, sc.subscriptions))
	start := time.Now()
	if err := produce(ctx, sc.events, producers, sc.rate, in.publish); err != nil {
		return runResult{}, fmt.Errorf("produce: %w", err)
	}
	producing := time.Since(start)
	step(fmt.Sprintf("Produced in %s; waiting for %d deliveries", producing.Round(time.Millisecond), sc.deliveries()))
	if err := b.waitReceived(ctx, routes, sc.deliveries(), logPath); err != nil {
		return runResult{}, err
	}
	end, err := b.settle(ctx, procs)
	if err != nil {
		return runResult{}, err
	}
	got := b.recv.receipts(routes)
	return runResult{scenario: sc, producing: producing, elapsed: got.last.Sub(start), received: got,
		latency: summarise(got.latencies()), writes: end.writes.minus(begin.writes), usage: usageOver(procs, begin, end)}, nil
}

// reading is the state at one end of a run's measurement window.
type reading struct {
	writes apiWrites
	cpu    map[string]time.Duration // by measured name
}

func (b *bench) read(ctx context.Context, procs []measured) (reading, error) {
	w, err := b.metrics.writes(ctx)
	if err != nil {
		return reading{}, err
	}
	r := reading{writes: w, cpu: map[string]time.Duration{}}
	for _, p := range procs {
		r.cpu[p.name] = p.sample().cpu
	}
	return r, nil
}

// startWindow resets the processes' peak memory and takes the reading the run's figures start from.
func (b *bench) startWindow(ctx context.Context, procs []measured) (reading, error) {
	for _, p := range procs {
		p.resetPeak()
	}
	return b.read(ctx, procs)
}

// usageOver is each process's CPU time between two readings and its peak memory since the window started.
func usageOver(procs []measured, begin, end reading) map[string]processUsage {
	u := map[string]processUsage{}
	for _, p := range procs {
		u[p.name] = processUsage{cpu: end.cpu[p.name] - begin.cpu[p.name], peakRSS: p.sample().peakRSS}
	}
	return u
}

// settle waits, after the last delivery arrived, until the API server has counted no new write for settleQuiet,
// and returns the reading taken when the last write was seen, where the window ends: writes trail the receipts
// (status patches, the fast path's flushes, history pruning) and belong to the run.
func (b *bench) settle(ctx context.Context, procs []measured) (reading, error) {
	last, err := b.read(ctx, procs)
	if err != nil {
		return reading{}, err
	}
	lastChange := time.Now()
	for time.Since(lastChange) < settleQuiet {
		select {
		case <-ctx.Done():
			return reading{}, fmt.Errorf("API writes did not stop: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		now, err := b.read(ctx, procs)
		if err != nil {
			return reading{}, err
		}
		if now.writes != last.writes {
			last, lastChange = now, time.Now()
		}
	}
	return last, nil
}

// waitReceived waits until the receiver has want distinct (subscription path, event id) pairs on routes.
func (b *bench) waitReceived(ctx context.Context, routes []*route, want int, logPath string) error {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	for {
		select {
		case <-poll.C:
			if b.recv.distinct(routes) >= want {
				return nil
			}
		case <-progress.C:
			got := b.recv.receipts(routes)
			step(fmt.Sprintf("%d of %d received (%d requests, %d bad signatures)", got.distinct, want, got.requests, got.badSig))
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d deliveries received before giving up: %w (operator log %s)",
				b.recv.distinct(routes), want, ctx.Err(), logPath)
		}
	}
}

// runningOperator is a run's operator process and its log file.
type runningOperator struct {
	*harness.Operator
	logPath string
	log     *os.File
	stopped bool
}

func (b *bench) startOperator(run string, args []string) (*runningOperator, error) {
	logPath := filepath.Join(b.dir, "operator-"+run+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	op, err := harness.StartOperator(b.binary, b.cp.KubeconfigPath, log, args...)
	if err != nil {
		_ = log.Close()
		return nil, err
	}
	o := &runningOperator{Operator: op, logPath: logPath, log: log}
	step(fmt.Sprintf("Started the operator (log %s): %s", logPath, o.commandLine()))
	return o, nil
}

// commandLine is the operator's command line as the report prints it.
func (o *runningOperator) commandLine() string {
	return filepath.Base(o.Binary) + " " + strings.Join(o.Args, " ")
}

// stop stops the process gracefully, once.
func (o *runningOperator) stop() {
	if o.stopped {
		return
	}
	o.stopped = true
	o.Stop(30 * time.Second)
	_ = o.log.Close()
}
