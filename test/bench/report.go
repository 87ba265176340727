package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// ceilings are the plain clients' rates on the same machine.
type ceilings struct {
	http, api float64
	workers   int
}

func report(out io.Writer, cfg config, results []modeResult, c ceilings) {
	fmt.Fprintf(out, "\nOperator command line per run:\n")
	for _, m := range results {
		for _, r := range m.runs {
			fmt.Fprintf(out, "  %s %s %s: %s\n", m.source, m.mode.name, r.scenario.name, r.command)
		}
	}
	fmt.Fprintf(out, "\nScenarios: saturation %d events for 1 subscription, produced at once; paced %d events/s for %s; "+
		"fan-out (modes %s) %d subscriptions x %d events. %d producers (outbox: one row per transaction). Receiver on "+
		"loopback; Envelope, HMACSHA256Hex.\n", cfg.events, cfg.pacedRate, cfg.pacedFor, modeNames(cfg.fanoutModes),
		cfg.fanoutSubs, cfg.fanoutEvents, cfg.producers)
	for _, source := range cfg.sources {
		reportModes(out, source, results, c)
	}
	reportRuns(out, results)
	reportHanging(out, cfg, results)
	reportOrdered(out, results)
	reportWrites(out, results)
	reportUsage(out, results)
	reportLedger(out, results)
	fmt.Fprintf(out, "\nCeilings on this machine, %d workers:\n", c.workers)
	fmt.Fprintf(out, "  HTTP: plain client posting the same signed bodies to the same receiver   %8.0f requests/s\n", c.http)
	fmt.Fprintf(out, "  API:  plain client creating WebhookDeliveries + patching their status    %8.0f objects/s (%.0f writes/s)\n", c.api, 2*c.api)
	fmt.Fprint(out, legend)
}

// reportModes prints the one table that compares the modes of a source: saturation throughput and costs, the
// paced run's latency, the fan-out rate and each process's peak memory over the mode's runs.
func reportModes(out io.Writer, source string, results []modeResult, c ceilings) {
	fmt.Fprintf(out, "\nModes, source %s (saturation figures unless named; RSS: peak MiB over the mode's runs):\n\n", source)
	tw := newTable(out)
	fmt.Fprint(tw, "mode\tdeliveries/s\t/ HTTP ceiling\t/ API ceiling\toperator CPU ms/event\tapiserver CPU ms/event\t"+
		"whdel writes/delivery\twhsub writes/delivery\tpaced p50\tpaced p99\tfan-out deliveries/s")
	for _, p := range processOrder {
		fmt.Fprintf(tw, "\tRSS %s", p)
	}
	fmt.Fprintln(tw, "\t")
	for _, m := range results {
		if m.source != source {
			continue
		}
		sat := m.run(scenarioSaturation)
		cells := []string{m.mode.name,
			f0(sat.rate()), f3(sat.rate() / c.http), f3(sat.rate() / c.api),
			cpuCell(sat, processOperator), cpuCell(sat, processAPIServer),
			f2(sat.writes.deliveries.total() / float64(sat.scenario.deliveries())),
			f2(sat.writes.subscriptions.total() / float64(sat.scenario.deliveries())),
		}
		if paced := m.run(scenarioPaced); paced != nil {
			cells = append(cells, ms(paced.latency.p50), ms(paced.latency.p99))
		} else {
			cells = append(cells, "-", "-")
		}
		if fan := m.run(scenarioFanout); fan != nil {
			cells = append(cells, f0(fan.rate()))
		} else {
			cells = append(cells, "-")
		}
		for _, p := range processOrder {
			peak, ok := m.peakRSS(p)
			cells = append(cells, mibCell(peak, ok))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	_ = tw.Flush()
}

// reportHanging compares the measured subscription's latency beside another namespace's hanging endpoints, and
// beside its failing ones, with the same load alone and beside the same endpoints answering at once (the same
// work without a fault: on a machine of few cores the extra matches cost CPU whatever their endpoints do, so
// this is the latency a fault must leave unchanged), measured in the same run.
func reportHanging(out io.Writer, cfg config, results []modeResult) {
	for _, m := range results {
		calm, answering := m.run(scenarioCalm), m.run(scenarioAnswering)
		for _, beside := range []struct{ scenario, what string }{{scenarioHanging, "hanging"}, {scenarioFailing, "failing (503)"}} {
			r := m.run(beside.scenario)
			if calm == nil || r == nil {
				continue
			}
			fmt.Fprintf(out, "\nBeside %d %s endpoints of another namespace (%s, %s, %d events/s for %s): healthy p50 %s (alone %s), "+
				"p99 %s (alone %s), p99 ratio %.2f\n", r.scenario.hanging, beside.what, m.source, m.mode.name, cfg.hangingRate, cfg.hangingFor,
				ms(r.latency.p50), ms(calm.latency.p50), ms(r.latency.p99), ms(calm.latency.p99),
				float64(r.latency.p99)/float64(max(calm.latency.p99, time.Millisecond)))
			if answering != nil {
				fmt.Fprintf(out, "  beside the same endpoints answering 200 at once: p50 %s, p99 %s; p99 ratio to it %.2f\n",
					ms(answering.latency.p50), ms(answering.latency.p99),
					float64(r.latency.p99)/float64(max(answering.latency.p99, time.Millisecond)))
			}
			over := max(2*calm.latency.p99, 20*time.Millisecond)
			slow, atOnset := r.received.slowAtOnset(over, time.Second)
			slowAlone, _ := calm.received.slowAtOnset(over, time.Second)
			slowAnswering := "-"
			if answering != nil {
				n, _ := answering.received.slowAtOnset(over, time.Second)
				slowAnswering = strconv.Itoa(n)
			}
			fmt.Fprintf(out, "  healthy events slower than %s: %d, of which %d produced in the run's first second (alone: %d; beside answering: %s)\n",
				ms(over), slow, atOnset, slowAlone, slowAnswering)
		}
	}
}

// reportOrdered compares the ordering pair: the same keyed events to a receiver failing at random, with
// spec.ordering and without, measured in the same run.
func reportOrdered(out io.Writer, results []modeResult) {
	for _, m := range results {
		on, off := m.run(scenarioOrdered), m.run(scenarioUnordered)
		if on == nil || off == nil {
			continue
		}
		fmt.Fprintf(out, "\nOrdered delivery (%s, %s): %d events, %d keys, receiver failing %d %% of the attempts at random (503, retried after 1 s):\n",
			m.source, m.mode.name, on.scenario.events, on.scenario.keys, on.scenario.failPercent)
		for _, r := range []*runResult{on, off} {
			what := "ordering on "
			if !r.scenario.ordered {
				what = "ordering off"
			}
			fmt.Fprintf(out, "  %s: out of order %d, delivered %d, attempts %d (%d answered 503), %s deliveries/s, p50 %s, p99 %s\n",
				what, r.received.outOfOrder, r.received.distinct, r.received.requests, r.received.failed, f0(r.rate()), ms(r.latency.p50), ms(r.latency.p99))
		}
		fmt.Fprintf(out, "  throughput on / off: %.2f\n", on.rate()/off.rate())
	}
}

// reportRuns prints every run's throughput and latency.
func reportRuns(out io.Writer, results []modeResult) {
	fmt.Fprintf(out, "\nRuns: throughput and latency (insert to first receipt):\n\n")
	tw := newTable(out)
	fmt.Fprintln(tw, "source\tmode\tscenario\tdeliveries\telapsed\tdeliveries/s\tproduced events/s\tp50\tp95\tp99\tmax\trequests\tbad sigs\t")
	for _, m := range results {
		for _, r := range m.runs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%d\t%d\t\n",
				m.source, m.mode.name, r.scenario.name, r.received.distinct, r.elapsed.Round(10*time.Millisecond),
				r.rate(), r.produceRate(), ms(r.latency.p50), ms(r.latency.p95), ms(r.latency.p99), ms(r.latency.max),
				r.received.requests, r.received.badSig)
		}
	}
	_ = tw.Flush()
}

// reportWrites prints every run's API writes by kind and verb, and per delivery.
func reportWrites(out io.Writer, results []modeResult) {
	fmt.Fprintf(out, "\nRuns: API writes (kube-apiserver's apiserver_request_total):\n\n")
	tw := newTable(out)
	fmt.Fprintln(tw, "source\tmode\tscenario\tWebhookDelivery creates\tstatus\tother\tdeletes\tper delivery\t"+
		"WebhookSubscription creates\tstatus\tother\tdeletes\tper delivery\t")
	for _, m := range results {
		for _, r := range m.runs {
			n := float64(r.scenario.deliveries())
			d, s := r.writes.deliveries, r.writes.subscriptions
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.3f\t%.0f\t%.0f\t%.0f\t%.0f\t%.4f\t\n",
				m.source, m.mode.name, r.scenario.name,
				d.creates, d.statusWrites, d.otherWrites, d.deletes, d.total()/n,
				s.creates, s.statusWrites, s.otherWrites, s.deletes, s.total()/n)
		}
	}
	_ = tw.Flush()
}

// reportUsage prints every run's CPU time per delivery and peak memory, per process.
func reportUsage(out io.Writer, results []modeResult) {
	fmt.Fprintf(out, "\nRuns: CPU ms per delivery and peak RSS MiB, per process:\n\n")
	tw := newTable(out)
	fmt.Fprint(tw, "source\tmode\tscenario")
	for _, p := range cpuReported {
		fmt.Fprintf(tw, "\tCPU %s", p)
	}
	for _, p := range processOrder {
		fmt.Fprintf(tw, "\tRSS %s", p)
	}
	fmt.Fprintln(tw, "\t")
	for _, m := range results {
		for _, r := range m.runs {
			cells := []string{m.source, m.mode.name, r.scenario.name}
			for _, p := range cpuReported {
				cells = append(cells, cpuCell(&r, p))
			}
			for _, p := range processOrder {
				u, ok := r.usage[p]
				cells = append(cells, mibCell(u.peakRSS, ok))
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
		}
	}
	_ = tw.Flush()
}

// reportLedger prints the ledger check of each saturation run that had one.
func reportLedger(out io.Writer, results []modeResult) {
	header := false
	for _, m := range results {
		sat := m.run(scenarioSaturation)
		if sat == nil || sat.ledger == nil {
			continue
		}
		if !header {
			fmt.Fprintf(out, "\nDelivery ledger after saturation (success rows per outbox event, one subscription):\n")
			header = true
		}
		l := sat.ledger
		fmt.Fprintf(out, "  %-8s %-7s %d events: %d with no success row, %d with exactly one, %d with more than one (%d ledger rows in all)\n",
			m.source, m.mode.name, l.events, l.none, l.once, l.more, l.rows)
	}
}

const legend = `
  deliveries/s: distinct (subscription, event) pairs received / time from the first event produced to the last
    pair received. Saturation produces the whole backlog at once, so its latencies are mostly queueing; the
    paced run's are the ones to read.
  CPU ms/event: the process's CPU time (/proc/<pid>/stat, user+system, with reaped children for PostgreSQL's
    backends) from the first event produced until the API server counted the run's last write, per delivery.
  API writes/delivery: apiserver_request_total POST, PUT, PATCH and DELETE on webhookdeliveries and on
    webhooksubscriptions over the same window, divided by the deliveries.
  peak RSS: VmHWM, reset when the run's window starts; postgres sums its processes (shared buffers counted
    once per process); bench is this program: receiver, producers and, for the nats source, the NATS server.
    kube-apiserver and etcd serve every run in turn, so their memory carries what earlier runs left.
  Ledger: per event of the run's outbox, its rows in webhook_deliveries with outcome 'succeeded'.
`

func newTable(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(out, 2, 8, 2, ' ', tabwriter.AlignRight)
}

func cpuCell(r *runResult, process string) string {
	v, ok := r.cpuPerDelivery(process)
	if !ok {
		return "-"
	}
	return f2(v)
}

func mibCell(bytes int64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(bytes)/(1<<20))
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
func f0(v float64) string       { return fmt.Sprintf("%.0f", v) }
func f2(v float64) string       { return fmt.Sprintf("%.2f", v) }
func f3(v float64) string       { return fmt.Sprintf("%.3f", v) }
