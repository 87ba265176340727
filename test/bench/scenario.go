package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// mode is how the operator dispatches matches, chosen with --first-attempt.
type mode struct {
	name         string
	firstAttempt bool
}

// modes are every mode -modes can name, in report order.
var modes = []mode{
	{name: "fast", firstAttempt: true},     // ingest makes the first attempt; successes write few objects
	{name: "objects", firstAttempt: false}, // every match becomes a WebhookDelivery; the controller attempts
}

func (m mode) operatorArgs() []string {
	return []string{fmt.Sprintf("--first-attempt=%t", m.firstAttempt)}
}

func parseModes(flagName, s string) ([]mode, error) {
	var out []mode
	for _, name := range strings.Split(s, ",") {
		if name == "" {
			continue
		}
		i := slices.IndexFunc(modes, func(m mode) bool { return m.name == name })
		if i < 0 {
			return nil, fmt.Errorf("%s: unknown mode %q: use fast, objects or both", flagName, name)
		}
		out = append(out, modes[i])
	}
	return out, nil
}

func modeNames(ms []mode) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.name
	}
	return strings.Join(names, ",")
}

// scenario is one kind of run: how many subscriptions match every event, how many events, and at what pace.
type scenario struct {
	name          string
	subscriptions int
	events        int
	// rate is events per second; 0 produces the whole backlog as fast as the producers can.
	rate float64
	// checkLedger counts each event's success rows in the delivery ledger afterwards, when the source has one.
	checkLedger bool
	// hanging is how many endpoints, each on a host of its own, another namespace subscribes to every event
	// with: the measured subscription's latency shows whether they hold it up. They never answer, unless answer
	// is set: then they answer with that status at once (503: failing; 200: the same load, healthy).
	hanging int
	answer  int
	// keys, when set, gives event seq the key seq % keys; ordered sets the subscription's spec.ordering.key to it.
	// The receiver then counts the events delivered after a later event of their key, and answers failPercent %
	// of the attempts with a 503 at random. producers overrides the configured producers (the ordered runs use one,
	// so source order is seq order).
	keys, failPercent, producers int
	ordered                      bool
}

func (s scenario) deliveries() int { return s.subscriptions * s.events }

// Scenario names, as the report shows them.
const (
	scenarioSaturation = "saturation"
	scenarioPaced      = "paced"
	scenarioFanout     = "fan-out"
	// The starvation runs: the same paced load alone, beside another namespace's endpoints answering at once (the
	// same work, no fault), hanging, and failing.
	scenarioCalm      = "beside-calm"
	scenarioAnswering = "beside-answering"
	scenarioHanging   = "beside-hanging"
	scenarioFailing   = "beside-failing"
	// The ordering pair: keyed events to a receiver failing at random, with spec.ordering and without.
	scenarioOrdered   = "ordered"
	scenarioUnordered = "unordered"
)

// scenarios are the runs of mode m that cfg asks for.
func (cfg config) scenarios(m mode) []scenario {
	out := []scenario{{name: scenarioSaturation, subscriptions: 1, events: cfg.events, checkLedger: true}}
	if cfg.pacedFor > 0 && cfg.pacedRate > 0 {
		out = append(out, scenario{name: scenarioPaced, subscriptions: 1,
			events: int(float64(cfg.pacedRate) * cfg.pacedFor.Seconds()), rate: float64(cfg.pacedRate)})
	}
	if cfg.hangingEndpoints > 0 && cfg.hangingFor > 0 && cfg.hangingRate > 0 && m.firstAttempt {
		n := int(float64(cfg.hangingRate) * cfg.hangingFor.Seconds())
		out = append(out,
			scenario{name: scenarioCalm, subscriptions: 1, events: n, rate: float64(cfg.hangingRate)},
			scenario{name: scenarioAnswering, subscriptions: 1, events: n, rate: float64(cfg.hangingRate), hanging: cfg.hangingEndpoints, answer: http.StatusOK},
			scenario{name: scenarioHanging, subscriptions: 1, events: n, rate: float64(cfg.hangingRate), hanging: cfg.hangingEndpoints},
			scenario{name: scenarioFailing, subscriptions: 1, events: n, rate: float64(cfg.hangingRate), hanging: cfg.hangingEndpoints, answer: http.StatusServiceUnavailable})
	}
	if cfg.orderedEvents > 0 && cfg.orderedKeys > 0 && m.firstAttempt {
		keyed := scenario{subscriptions: 1, events: cfg.orderedEvents, keys: cfg.orderedKeys, failPercent: cfg.orderedFailPercent, producers: 1}
		on, off := keyed, keyed
		on.name, on.ordered = scenarioOrdered, true
		off.name = scenarioUnordered
		out = append(out, on, off)
	}
	if cfg.fanoutSubs > 0 && cfg.fanoutEvents > 0 && slices.Contains(cfg.fanoutModes, m) {
		out = append(out, scenario{name: scenarioFanout, subscriptions: cfg.fanoutSubs, events: cfg.fanoutEvents})
	}
	return out
}

// runResult is what one run (one operator process, one scenario) measured.
type runResult struct {
	scenario scenario
	// command is the operator's command line.
	command string
	// producing is how long producing every event took; elapsed runs from the first event produced to the last
	// distinct (subscription, event) received.
	producing, elapsed time.Duration
	received           receipts
	latency            latency
	// writes are the API server's write requests from the first event produced until writes stopped.
	writes apiWrites
	// usage is each measured process's CPU time over the same window and its peak memory in it, by name.
	usage map[string]processUsage
	// ledger is nil when not checked.
	ledger *ledgerCounts
}

// rate is deliveries per second end to end.
func (r runResult) rate() float64 { return float64(r.received.distinct) / r.elapsed.Seconds() }

// produceRate is the events per second the producers achieved.
func (r runResult) produceRate() float64 { return float64(r.scenario.events) / r.producing.Seconds() }

// cpuPerDelivery is a process's CPU milliseconds per delivery; false when it was not measured.
func (r runResult) cpuPerDelivery(process string) (float64, bool) {
	u, ok := r.usage[process]
	if !ok {
		return 0, false
	}
	return float64(u.cpu.Microseconds()) / 1000 / float64(r.scenario.deliveries()), true
}

// modeResult is one source's runs in one mode.
type modeResult struct {
	source string
	mode   mode
	runs   []runResult
}

// run returns the run of a scenario, or nil when it was skipped.
func (m modeResult) run(scenario string) *runResult {
	for i := range m.runs {
		if m.runs[i].scenario.name == scenario {
			return &m.runs[i]
		}
	}
	return nil
}

// peakRSS is a process's highest peak over the mode's runs; false when it was not measured.
func (m modeResult) peakRSS(process string) (int64, bool) {
	var peak int64
	found := false
	for _, r := range m.runs {
		if u, ok := r.usage[process]; ok {
			peak, found = max(peak, u.peakRSS), true
		}
	}
	return peak, found
}

// latency summarises the time from an event's production (data.sent_at_ns) to its first receipt.
type latency struct {
	p50, p95, p99, max time.Duration
}

func summarise(l []time.Duration) latency {
	if len(l) == 0 {
		return latency{}
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return latency{p50: percentile(s, 0.50), p95: percentile(s, 0.95), p99: percentile(s, 0.99), max: s[len(s)-1]}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
