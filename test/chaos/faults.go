package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hookpost/hookpost/test/harness"
)

// Outage lengths of the servers restarted once each. kube-apiserver's is the longest: several ingest batches and
// success flushes find it gone.
const (
	postgresDown  = 5 * time.Second
	natsDown      = 5 * time.Second
	apiServerDown = 15 * time.Second
	// restartDelay is how long a process that exited on its own stays down before it is started again, as a
	// kubelet restarting a crashed container would.
	restartDelay = time.Second
)

// faults injects the run's faults and records when each ended.
type faults struct {
	start time.Time
	rng   *rand.Rand
	op    *harness.Operator

	mu        sync.Mutex
	kills     int
	selfExits int
	lastEnd   time.Time // when the latest fault ended: the process or server was started again
	restarts  []string  // one line per server restart, for the report
}

// logf prints a line of the run's timeline, stamped with the time since the chaos started.
func (f *faults) logf(format string, args ...any) {
	fmt.Printf("  %+8.1fs  %s\n", time.Since(f.start).Seconds(), fmt.Sprintf(format, args...))
}

func (f *faults) ended() {
	f.mu.Lock()
	f.lastEnd = time.Now()
	f.mu.Unlock()
}

// superviseOperator SIGKILLs the operator and starts it again at random intervals in [killMin, killMax) until
// killUntil, and restarts it after restartDelay whenever it exits on its own, until ctx ends.
func (f *faults) superviseOperator(ctx context.Context, killUntil time.Time, killMin, killMax time.Duration) error {
	for {
		next := killMin + time.Duration(f.rng.Int64N(int64(killMax-killMin)+1))
		timer := time.NewTimer(next)
		kill := timer.C
		if time.Now().Add(next).After(killUntil) {
			kill = nil // the chaos is over: only restart an operator that exits on its own
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-f.op.Done():
			f.mu.Lock()
			f.selfExits++
			f.mu.Unlock()
			f.logf("the operator exited on its own; starting it again in %s", restartDelay)
			time.Sleep(restartDelay)
		case <-kill:
			f.op.Kill()
			f.mu.Lock()
			f.kills++
			n := f.kills
			f.mu.Unlock()
			f.logf("SIGKILL %d of the operator", n)
		}
		timer.Stop()
		if err := f.op.Start(); err != nil {
			return err
		}
		f.ended()
	}
}

// restartServers restarts PostgreSQL, NATS and kube-apiserver once each, at a quarter, half and three quarters of
// chaosFor, each down for its outage.
func (f *faults) restartServers(ctx context.Context, chaosFor time.Duration, pg *harness.Postgres, n *harness.NATS, cp *harness.ControlPlane) error {
	steps := []struct {
		name string
		down time.Duration
		stop func() (start func() error, err error)
	}{
		{"PostgreSQL", postgresDown, func() (func() error, error) { pg.Stop(); return pg.Start, nil }},
		{"NATS", natsDown, func() (func() error, error) { n.Shutdown(); return n.Start, nil }},
		{"kube-apiserver", apiServerDown, func() (func() error, error) {
			start, err := cp.StopAPIServer()
			if err != nil {
				return nil, err
			}
			return func() error {
				sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				return start(sctx)
			}, nil
		}},
	}
	for i, s := range steps {
		if !harness.SleepUntil(ctx, f.start.Add(chaosFor*time.Duration(i+1)/4)) {
			return ctx.Err()
		}
		stoppedAt := time.Since(f.start)
		start, err := s.stop()
		if err != nil {
			return fmt.Errorf("stop %s: %w", s.name, err)
		}
		f.logf("%s stopped for %s", s.name, s.down)
		if !harness.SleepUntil(ctx, time.Now().Add(s.down)) {
			return ctx.Err()
		}
		if err := start(); err != nil {
			return fmt.Errorf("start %s again: %w", s.name, err)
		}
		f.logf("%s back", s.name)
		f.mu.Lock()
		f.restarts = append(f.restarts, fmt.Sprintf("%s stopped at +%.0fs, back at +%.0fs", s.name, stoppedAt.Seconds(), time.Since(f.start).Seconds()))
		f.mu.Unlock()
		f.ended()
	}
	return nil
}
