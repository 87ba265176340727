package delivery

import (
	"fmt"
	"sync"
	"time"
)

// BreakerPolicy says when a subscription's circuit opens and how it closes again. The zero policy never opens.
type BreakerPolicy struct {
	// ConsecutiveFailures opens the circuit after this many failed attempts in a row; 0 turns the rule off.
	ConsecutiveFailures int
	// FailureRatePercent opens the circuit when at least this share of the attempts of the last Window failed,
	// once the window holds MinAttempts attempts; 0 turns the rule off.
	FailureRatePercent int
	Window             time.Duration
	MinAttempts        int
	// OpenFor is how long the circuit stays open before one probe is let through; each failed probe doubles it,
	// up to MaxOpenFor.
	OpenFor, MaxOpenFor time.Duration
	// DrainPerSecond bounds the attempts let through per second after the circuit closes, while the deliveries
	// that waited drain; 0 does not bound them.
	DrainPerSecond int
	// DisableOnGone marks the circuit Gone on a 410 answer, for the subscription controller to disable the
	// subscription.
	DisableOnGone bool
}

// Enabled reports whether the policy can open a circuit or mark it Gone.
func (p BreakerPolicy) Enabled() bool {
	return p.ConsecutiveFailures > 0 || p.FailureRatePercent > 0 || p.DisableOnGone
}

// CircuitState is where a subscription's circuit is.
type CircuitState string

const (
	// CircuitClosed: attempts are made.
	CircuitClosed CircuitState = "Closed"
	// CircuitOpen: no attempt is made until the open period ends; deliveries wait, spending no retry budget.
	CircuitOpen CircuitState = "Open"
	// CircuitHalfOpen: the open period ended and one probe attempt is out; its outcome closes or reopens.
	CircuitHalfOpen CircuitState = "HalfOpen"
)

// Breaker verdicts of an attempt, from its class: a failure that retries counts against the endpoint, a success
// for it, and a rejection (a 4xx not retried, a request that cannot be built) says nothing of its health.
func breakerVerdict(c Class) (failed, counts bool) {
	switch c {
	case ClassSucceeded:
		return false, true
	case ClassRetry, ClassTLS:
		return true, true
	}
	return false, false
}

// Admission is a breaker's answer to "may this subscription attempt now?".
type Admission struct {
	// OK: attempt now. When it is false, wait until RetryAt without spending the delivery's retry budget.
	OK bool
	// Probe: the attempt is the half-open circuit's one probe; its caller reports it with Record, or Unused when
	// it was not sent after all.
	Probe   bool
	RetryAt time.Time
}

// Circuit is what a breaker tells about one subscription's circuit, for its status.
type Circuit struct {
	State CircuitState
	// Since is when the circuit last opened (Open, HalfOpen) or closed (Closed); zero for one never opened.
	Since time.Time
	// Until is when an open circuit lets its next probe through.
	Until time.Time
	// Reason is what opened it, such as "10 consecutive failed attempts".
	Reason string
	// Gone: the endpoint answered 410 Gone under a policy that disables on it; cleared by ClearGone.
	Gone bool
	// Consecutive is how many attempts in a row failed, counted while the circuit was closed.
	Consecutive int
}

// probeLease is how long a half-open circuit waits for its probe's outcome before it lets another through: longer
// than the longest attempt (60 s), so a probe in flight is never doubled, and short enough that a probe whose
// caller vanished (a crash, a shutdown) does not keep the circuit half-open for long.
const probeLease = 90 * time.Second

// drainQuiet is how long the drain after a close lasts once no attempt had to wait for it.
const drainQuiet = 5 * time.Second

// Breakers keeps a circuit per subscription, in memory: each replica opens its own circuit on the failures it
// sees. Keys are the caller's (a subscription's namespace/name). Breakers is safe for concurrent use, and all its
// decisions are functions of the now they are given.
type Breakers struct {
	mu       sync.Mutex
	circuits map[string]*circuit
	changed  chan string
	// opened and closed count transitions, for the metrics.
	opened, closed int64
}

// circuit is one subscription's breaker.
type circuit struct {
	state       CircuitState
	consecutive int
	// window counts the attempts and failures of the current Window, prev those of the one before it.
	windowStart                time.Time
	attempts, failures         int
	prevAttempts, prevFailures int
	since, until               time.Time
	openFor                    time.Duration
	probeOut                   time.Time // when the half-open circuit's probe went out; zero when none is out
	reason                     string
	drain                      drain
	gone                       bool
}

// drain is a closed circuit's bound on the attempts of the deliveries that waited while it was open: a token
// bucket of DrainPerSecond, from the close until drainQuiet passes without an attempt turned away.
type drain struct {
	start, lastWait time.Time // zero start: not draining
	tokens          float64
	tokensAt        time.Time
	queueEnd        time.Time // the last slot given to an attempt turned away
}

// NewBreakers returns an empty set of circuits.
func NewBreakers() *Breakers {
	return &Breakers{circuits: map[string]*circuit{}, changed: make(chan string, 1024)}
}

// Changed delivers the keys whose circuit opened or closed, for the subscription controller to write the
// condition. A full channel drops the key: the controller also reads State on every reconcile.
func (b *Breakers) Changed() <-chan string { return b.changed }

// Allow says whether key may attempt at now under p.
func (b *Breakers) Allow(key string, p BreakerPolicy, now time.Time) Admission {
	if b == nil || !p.Enabled() {
		return Admission{OK: true}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.circuits[key]
	if c == nil {
		return Admission{OK: true}
	}
	switch c.state {
	case CircuitOpen:
		if now.Before(c.until) {
			return Admission{RetryAt: c.until}
		}
		c.state, c.probeOut = CircuitHalfOpen, now
		return Admission{OK: true, Probe: true}
	case CircuitHalfOpen:
		if c.probeOut.IsZero() || now.Sub(c.probeOut) >= probeLease {
			c.probeOut = now
			return Admission{OK: true, Probe: true}
		}
		return Admission{RetryAt: c.probeOut.Add(probeLease)}
	}
	return c.drain.admit(p.DrainPerSecond, now)
}

// admit lets an attempt through when the bucket holds a token. One turned away is given the next free slot of a
// queue served at perSecond, so a backlog of n comes back spread over n/perSecond seconds instead of knocking every
// interval.
func (d *drain) admit(perSecond int, now time.Time) Admission {
	if d.start.IsZero() || perSecond <= 0 {
		return Admission{OK: true}
	}
	quietSince := d.start
	if d.lastWait.After(quietSince) {
		quietSince = d.lastWait
	}
	if now.Sub(quietSince) >= drainQuiet && !d.queueEnd.After(now) {
		*d = drain{}
		return Admission{OK: true}
	}
	rate := float64(perSecond)
	d.tokens = min(rate, d.tokens+now.Sub(d.tokensAt).Seconds()*rate)
	d.tokensAt = now
	if d.tokens >= 1 {
		d.tokens--
		return Admission{OK: true}
	}
	d.lastWait = now
	if d.queueEnd.Before(now) {
		d.queueEnd = now
	}
	d.queueEnd = d.queueEnd.Add(time.Duration(float64(time.Second) / rate))
	return Admission{RetryAt: d.queueEnd}
}

// Unused gives back a probe that was granted and not sent (its destination host was busy, say).
func (b *Breakers) Unused(key string, a Admission) {
	if b == nil || !a.Probe {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.circuits[key]; c != nil && c.state == CircuitHalfOpen {
		c.probeOut = time.Time{}
	}
}

// Record counts an attempt's outcome for key; a the admission it was made under. It opens the circuit when p says
// so, and closes or reopens a half-open one by its probe's outcome.
func (b *Breakers) Record(key string, p BreakerPolicy, a Admission, class Class, now time.Time) {
	if b == nil || !p.Enabled() {
		return
	}
	if class == ClassGone && p.DisableOnGone {
		b.markGone(key)
	}
	failed, counts := breakerVerdict(class)
	if !counts {
		b.Unused(key, a)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.circuits[key]
	if c == nil {
		if !failed {
			return // a healthy subscription costs no entry
		}
		c = &circuit{state: CircuitClosed}
		b.circuits[key] = c
	}
	switch {
	case c.state == CircuitHalfOpen && a.Probe:
		if failed {
			c.open(now, min(2*c.openFor, max(p.MaxOpenFor, p.OpenFor)), "the probe attempt failed")
			b.notify(key)
			return
		}
		c.close(p, now)
		b.closed++
		b.notify(key)
		return
	case c.state != CircuitClosed:
		// An attempt that was in flight when the circuit opened: the circuit already knows.
		return
	}
	c.count(p, failed, now)
	if reason := c.tripped(p); reason != "" {
		c.open(now, p.OpenFor, reason)
		b.opened++
		b.notify(key)
		return
	}
	if !failed && c.consecutive == 0 && c.failures == 0 && c.prevFailures == 0 && c.drain.start.IsZero() && !c.gone {
		delete(b.circuits, key)
	}
}

// markGone records a 410 Gone for key and says so.
func (b *Breakers) markGone(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.circuits[key]
	if c == nil {
		c = &circuit{state: CircuitClosed}
		b.circuits[key] = c
	}
	c.gone = true
	b.notify(key)
}

// ClearGone forgets key's 410 Gone once the subscription controller has recorded it in the subscription's status,
// which keeps it from then on.
func (b *Breakers) ClearGone(key string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.circuits[key]; c != nil {
		c.gone = false
	}
}

// count adds an attempt to the streak and the window.
func (c *circuit) count(p BreakerPolicy, failed bool, now time.Time) {
	if failed {
		c.consecutive++
	} else {
		c.consecutive = 0
	}
	if p.FailureRatePercent <= 0 || p.Window <= 0 {
		return
	}
	if elapsed := now.Sub(c.windowStart); elapsed >= p.Window {
		c.prevAttempts, c.prevFailures = c.attempts, c.failures
		if elapsed >= 2*p.Window {
			c.prevAttempts, c.prevFailures = 0, 0
		}
		c.windowStart, c.attempts, c.failures = now, 0, 0
	}
	c.attempts++
	if failed {
		c.failures++
	}
}

// tripped says why the circuit must open, "" when it need not.
func (c *circuit) tripped(p BreakerPolicy) string {
	if p.ConsecutiveFailures > 0 && c.consecutive >= p.ConsecutiveFailures {
		return fmt.Sprintf("%d consecutive failed attempts", c.consecutive)
	}
	attempts, failures := c.attempts+c.prevAttempts, c.failures+c.prevFailures
	if p.FailureRatePercent > 0 && attempts >= max(p.MinAttempts, 1) && failures*100 >= p.FailureRatePercent*attempts {
		return fmt.Sprintf("%d of %d attempts failed in %s", failures, attempts, p.Window)
	}
	return ""
}

func (c *circuit) open(now time.Time, openFor time.Duration, reason string) {
	if openFor <= 0 {
		openFor = time.Second
	}
	if c.state == CircuitClosed {
		c.since = now
	}
	c.state, c.until, c.openFor, c.probeOut, c.reason, c.drain = CircuitOpen, now.Add(openFor), openFor, time.Time{}, reason, drain{}
}

func (c *circuit) close(p BreakerPolicy, now time.Time) {
	*c = circuit{state: CircuitClosed, since: now}
	if p.DrainPerSecond > 0 {
		c.drain = drain{start: now, tokensAt: now, tokens: 1}
	}
}

func (b *Breakers) notify(key string) {
	select {
	case b.changed <- key:
	default:
	}
}

// State returns key's circuit as of now (Closed for one never opened).
func (b *Breakers) State(key string, now time.Time) Circuit {
	if b == nil {
		return Circuit{State: CircuitClosed}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.circuits[key]
	if c == nil {
		return Circuit{State: CircuitClosed}
	}
	out := Circuit{State: c.state, Since: c.since, Until: c.until, Reason: c.reason, Gone: c.gone, Consecutive: c.consecutive}
	if c.state == CircuitOpen && !now.Before(c.until) {
		out.State = CircuitHalfOpen
	}
	return out
}

// Counts returns how many circuits are open (or half-open) now and how many times circuits opened and closed.
func (b *Breakers) Counts() (open int, opened, closed int64) {
	if b == nil {
		return 0, 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.circuits {
		if c.state != CircuitClosed {
			open++
		}
	}
	return open, b.opened, b.closed
}

// Forget drops key's circuit (its subscription was deleted or its policy changed).
func (b *Breakers) Forget(key string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.circuits, key)
}
