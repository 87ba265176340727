// Package postgres is the delivery ledger in PostgreSQL: a Writer appends every attempt handed to Record to a
// table (default "webhook_deliveries") in batches with COPY, from a bounded in-memory buffer, so recording an
// attempt costs a mutex and an append and never waits for the database. Rows of a failed write stay buffered
// and are retried with backoff; when the buffer is full, new attempts are dropped and counted. Rows older than
// the retention are deleted in chunks every minute. Query reads the table back for kubectl hookpost history.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookpost/hookpost/internal/backoff"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ledger"
	"github.com/hookpost/hookpost/internal/pgschema"
)

// Defaults for Options.
const (
	DefaultSchema        = pgschema.DefaultSchema
	DefaultTable         = "webhook_deliveries"
	DefaultRetention     = 30 * 24 * time.Hour
	DefaultBatchSize     = 1000
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultBufferSize    = 100000
)

// MaxResponseBytes is how much of a response body the ledger keeps, what the sender reads of one; Record cuts
// longer ones.
const MaxResponseBytes = delivery.MaxResponseBody

const (
	// retentionInterval is how often rows older than the retention are purged.
	retentionInterval = time.Minute
	// purgeChunk bounds one DELETE, so purging a large backlog never holds locks for long or delays writes.
	purgeChunk = 10000
	// writeTimeout bounds one batch write, so a database that stops answering cannot stall the loop forever.
	writeTimeout = 30 * time.Second
	// shutdownFlushTimeout bounds the last flush after Start's context ends, within the manager's graceful
	// shutdown.
	shutdownFlushTimeout = 10 * time.Second
	// retryBackoffMin and retryBackoffMax bound the wait between failed writes.
	retryBackoffMin = 200 * time.Millisecond
	retryBackoffMax = 10 * time.Second
	// dropLogInterval is how often dropped attempts are logged: once per interval, with the count.
	dropLogInterval = 30 * time.Second
)

// Reasons of hookpost_ledger_dropped_total.
const (
	reasonBufferFull = "buffer_full"
	reasonInvalid    = "invalid"
)

// Options configure a Writer.
type Options struct {
	// DSN is a libpq-style connection string or URL.
	DSN string
	// Schema holds the ledger table; default "public".
	Schema string
	// Table is the ledger table; default "webhook_deliveries".
	Table string
	// Retention is how long rows are kept, by attempt time; 0 means DefaultRetention (30 days), a negative
	// value keeps them forever.
	Retention time.Duration
	// BatchSize is the most rows one COPY writes; default 1000. A full batch is written at once, without
	// waiting for FlushInterval.
	BatchSize int
	// FlushInterval is how often buffered rows are written; default 200ms.
	FlushInterval time.Duration
	// BufferSize bounds the rows held in memory, written or not yet; default 100000. When it is full, Record
	// drops the attempt and counts it in hookpost_ledger_dropped_total{reason="buffer_full"}.
	BufferSize int
	// Registerer, when set, receives the writer's metrics (see Writer's doc). The manager passes
	// controller-runtime's registry; nil leaves them unregistered, for tests and the kubectl plugin.
	Registerer prometheus.Registerer
	// Log receives write failures, dropped attempts and purge failures; the zero Logger discards.
	Log logr.Logger
	// Now returns the current time for retention cutoffs; default time.Now. Waits use real timers.
	Now func() time.Time
}

// Writer appends attempts to the ledger table. It implements ledger.Recorder; Start runs the loop that writes
// them. Record is safe for concurrent use, as are Flush, PurgeExpired and Query.
//
// Metrics belong to the Writer, not to package variables, so each Writer counts its own rows and its buffer
// gauge reads its own buffer; Options.Registerer registers them:
//
//	hookpost_ledger_rows_written_total        attempts written to the table
//	hookpost_ledger_dropped_total{reason}     attempts dropped: buffer_full, or invalid (a value the table refuses)
//	hookpost_ledger_write_errors_total        failed batch writes (their rows stay buffered and are retried)
//	hookpost_ledger_buffered                  attempts recorded and not yet written
type Writer struct {
	opts     Options
	log      logr.Logger
	table    pgschema.Table
	pool     *pgxpool.Pool
	purgeSQL string
	// purgePrunedSQL deletes expired rows of the table of pruned deliveries.
	purgePrunedSQL string
	// failing holds the error of Start's last write while its writes fail, nil while they succeed.
	failing atomic.Pointer[error]

	// wake (buffered 1) tells the loop a full batch is waiting.
	wake chan struct{}
	// flushMu serialises writers of the buffer's head: the loop, Flush and the shutdown flush.
	flushMu sync.Mutex

	mu      sync.Mutex
	pending []ledger.Attempt // recorded, not yet taken by a write, oldest first
	writing int              // rows taken by the write in progress; they count against BufferSize
	// Dropped attempts not yet logged, and the last reason an attempt was invalid.
	unloggedFull, unloggedInvalid int
	lastInvalid                   string
	lastDropLog                   time.Time

	written     prometheus.Counter
	dropped     *prometheus.CounterVec
	writeErrors prometheus.Counter
	buffered    prometheus.GaugeFunc
}

var _ ledger.Recorder = (*Writer)(nil)

// New prepares a Writer. It does not wait for the database: connections are opened on first use, and a
// database that is down is retried by the loop.
func New(ctx context.Context, opts Options) (*Writer, error) {
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = DefaultBufferSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	poolConfig, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse ledger postgres dsn: %w", err)
	}
	// Go strings are UTF-8: say so, so a database in another encoding converts them, or refuses a character it
	// lacks, instead of storing UTF-8 bytes as if they were its own encoding.
	poolConfig.ConnConfig.RuntimeParams["client_encoding"] = "UTF8"
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	if err != nil {
		return nil, fmt.Errorf("create ledger postgres pool: %w", err)
	}
	t := pgschema.NewTable(opts.Schema, opts.Table, DefaultTable)
	w := &Writer{
		opts:  opts,
		log:   opts.Log,
		table: t,
		pool:  pool,
		purgeSQL: fmt.Sprintf(`DELETE FROM %[1]s WHERE id IN (
    SELECT id FROM %[1]s WHERE attempted_at < $1 LIMIT %[2]d)`, t.Qualified(), purgeChunk),
		purgePrunedSQL: purgePrunedSQL(t),
		wake:           make(chan struct{}, 1),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookpost_ledger_rows_written_total",
			Help: "Attempts written to the delivery ledger table.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookpost_ledger_dropped_total",
			Help: "Attempts the delivery ledger dropped, by reason: buffer_full (the database was down or slow for longer than the buffer holds) or invalid (a value the table refuses).",
		}, []string{"reason"}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookpost_ledger_write_errors_total",
			Help: "Failed batch writes to the delivery ledger; their rows stay buffered and are retried.",
		}),
	}
	w.buffered = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hookpost_ledger_buffered",
		Help: "Attempts recorded and not yet written to the delivery ledger.",
	}, func() float64 { return float64(w.Buffered()) })
	// Both reasons exist from the start, so a rate() over them works before the first drop.
	w.dropped.WithLabelValues(reasonBufferFull)
	w.dropped.WithLabelValues(reasonInvalid)
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{w.written, w.dropped, w.writeErrors, w.buffered} {
			if err := opts.Registerer.Register(c); err != nil {
				pool.Close()
				return nil, fmt.Errorf("register ledger metrics: %w", err)
			}
		}
	}
	return w, nil
}

// NeedLeaderElection returns false: every replica records the attempts it makes, so every replica writes.
func (w *Writer) NeedLeaderElection() bool { return false }

// Record buffers an attempt for the next write. It never waits for the database: when the buffer is full the
// attempt is dropped, counted in hookpost_ledger_dropped_total{reason="buffer_full"} and logged (once per 30s,
// with the count). An attempt whose Outcome is not one of the four is dropped as invalid. Strings are stored
// as valid UTF-8 without NUL bytes (other bytes become U+FFFD), the response is cut to MaxResponseBytes and
// copied, so the caller may reuse its buffer.
func (w *Writer) Record(a ledger.Attempt) {
	if !validOutcome(a.Outcome) {
		w.dropInvalid(fmt.Sprintf("outcome %q of delivery %s attempt %d is not succeeded, retrying, failed or refused", a.Outcome, a.DeliveryName, a.Number))
		return
	}
	a = storable(a)
	w.mu.Lock()
	if len(w.pending)+w.writing >= w.opts.BufferSize {
		w.unloggedFull++
		w.mu.Unlock()
		w.dropped.WithLabelValues(reasonBufferFull).Inc()
		return
	}
	w.pending = append(w.pending, a)
	full := len(w.pending) >= w.opts.BatchSize
	w.mu.Unlock()
	if full {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Buffered returns how many attempts are recorded and not yet written.
func (w *Writer) Buffered() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) + w.writing
}

// dropInvalid counts and remembers, for the next log, an attempt the ledger cannot store.
func (w *Writer) dropInvalid(why string) {
	w.mu.Lock()
	w.unloggedInvalid++
	w.lastInvalid = why
	w.mu.Unlock()
	w.dropped.WithLabelValues(reasonInvalid).Inc()
}

// Start writes buffered attempts every FlushInterval, or at once when a batch is full, and purges expired rows
// every minute, until ctx ends. Then it writes what is still buffered, retrying for at most 10s, and returns
// an error naming how many attempts were lost if that fails. Attempts recorded after Start returned stay
// buffered until a Flush. Start implements controller-runtime's manager.Runnable.
func (w *Writer) Start(ctx context.Context) error {
	ticker := time.NewTicker(w.opts.FlushInterval)
	defer ticker.Stop()
	// A write under way when ctx ends is finished, not abandoned: its rows would only be written again.
	writeCtx := context.WithoutCancel(ctx)
	failures := 0
	var nextPurge time.Time
	for {
		w.logDrops(false)
		if err := w.write(writeCtx, ctx.Done()); err != nil {
			failures++
			wait := backoff.Exponential(failures, retryBackoffMin, retryBackoffMax)
			w.log.Error(err, "Ledger write failed; the attempts stay buffered and are retried", "buffered", w.Buffered(), "retryIn", wait.String())
			w.failing.Store(&err)
			if backoff.Sleep(ctx, wait) != nil {
				return w.shutdown()
			}
			continue
		}
		if failures > 0 {
			w.log.Info("Ledger writes resumed", "failedWrites", failures)
			w.failing.Store(nil)
			failures = 0
		}
		if w.opts.Retention >= 0 && !time.Now().Before(nextPurge) {
			nextPurge = time.Now().Add(retentionInterval)
			if w.purgeChunk(ctx) {
				nextPurge = time.Now() // more expired rows wait: the next round deletes the next chunk
			}
		}
		select {
		case <-ctx.Done():
			return w.shutdown()
		case <-ticker.C:
		case <-w.wake:
		}
	}
}

// shutdown writes everything buffered, retrying until shutdownFlushTimeout.
func (w *Writer) shutdown() error {
	defer w.logDrops(true)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownFlushTimeout)
	defer cancel()
	var err error
	for failures := 0; ctx.Err() == nil; {
		if err = w.write(ctx, nil); err == nil {
			if w.pendingCount() == 0 {
				return nil
			}
			continue // attempts finishing during the shutdown recorded more
		}
		failures++
		_ = backoff.Sleep(ctx, backoff.Exponential(failures, retryBackoffMin, retryBackoffMax))
	}
	if err == nil {
		err = ctx.Err()
	}
	return fmt.Errorf("%d ledger attempts not written at shutdown within %s: %w", w.Buffered(), shutdownFlushTimeout, err)
}

// Flush writes every attempt recorded before it was called, and returns the first write error; rows it could
// not write stay buffered. While Start's writes are failing it returns their error at once instead of trying
// again: callers flush before every batch acknowledgement and status write, and a database that does not
// answer must not hold each of them up for a write timeout (Start keeps retrying).
func (w *Writer) Flush(ctx context.Context) error {
	if err := w.failing.Load(); err != nil {
		return fmt.Errorf("ledger writes are failing and retried in the background: %w", *err)
	}
	return w.write(ctx, nil)
}

func (w *Writer) pendingCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// write writes the rows pending when it starts (no more, so a steady stream of attempts cannot keep the loop
// from purging, logging or noticing its end), a batch at a time. Rows of a failed batch go back to the head
// of the buffer, in order. It stops between batches when stop is closed.
func (w *Writer) write(ctx context.Context, stop <-chan struct{}) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	// Rows an earlier write held are written or back in pending by now, so they are counted.
	limit := w.pendingCount()
	for done := 0; done < limit; {
		select {
		case <-stop:
			return nil
		default:
		}
		batch := w.take(min(limit-done, w.opts.BatchSize))
		if len(batch) == 0 {
			return nil
		}
		rest, err := w.writeBatch(ctx, batch)
		w.settle(rest)
		if err != nil {
			w.writeErrors.Inc()
			return err
		}
		done += len(batch)
	}
	return nil
}

// take moves up to n rows from the head of pending to the write in progress.
func (w *Writer) take(n int) []ledger.Attempt {
	w.mu.Lock()
	defer w.mu.Unlock()
	n = min(n, len(w.pending))
	batch := w.pending[:n:n]
	if n == len(w.pending) {
		w.pending = nil // a fresh array next time, so written rows are not kept alive
	} else {
		w.pending = w.pending[n:]
	}
	w.writing = n
	return batch
}

// settle ends the write in progress, putting the rows it did not write back at the head of pending.
func (w *Writer) settle(rest []ledger.Attempt) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writing = 0
	if len(rest) > 0 {
		w.pending = append(rest[:len(rest):len(rest)], w.pending...)
	}
}

// writeBatch copies batch into the table and returns the rows it did not write. When the database refuses a
// value (a data exception or a constraint, such as a character the database's encoding lacks), the batch is
// written a row at a time and the refused rows are dropped as invalid: retrying them would block the ledger.
func (w *Writer) writeBatch(ctx context.Context, batch []ledger.Attempt) ([]ledger.Attempt, error) {
	err := w.copy(ctx, batch)
	if err == nil {
		w.written.Add(float64(len(batch)))
		return nil, nil
	}
	if !isRefusedValue(err) {
		return batch, w.explain("write attempts to", err)
	}
	for i := range batch {
		err := w.copy(ctx, batch[i:i+1])
		switch {
		case err == nil:
			w.written.Inc()
		case isRefusedValue(err):
			w.dropInvalid(fmt.Sprintf("delivery %s attempt %d: %v", batch[i].DeliveryName, batch[i].Number, err))
		default:
			return batch[i:], w.explain("write attempts to", err)
		}
	}
	return nil, nil
}

func (w *Writer) copy(ctx context.Context, batch []ledger.Attempt) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	_, err := w.pool.CopyFrom(ctx, w.table.Identifier(), columns, pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
		return row(batch[i]), nil
	}))
	return err
}

// explain wraps an error of action on the table, naming the fix when the table is missing.
func (w *Writer) explain(action string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return fmt.Errorf("%s ledger table %s: it does not exist: start the manager with --ledger-migrate, or apply the DDL that manager --ledger-print-ddl prints: %w", action, w.table.Qualified(), err)
	}
	return fmt.Errorf("%s ledger table %s: %w", action, w.table.Qualified(), err)
}

// isRefusedValue reports whether the database refused a value (SQLSTATE classes 22 data exception and 23
// integrity constraint violation): the same row fails again however often it is retried.
func isRefusedValue(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}

// row is an attempt's values in the order of columns. Absent optional values are NULL.
func row(a ledger.Attempt) []any {
	return []any{
		a.Time, a.Namespace, a.Subscription, a.DeliveryName, a.EventID, a.EventType,
		nullIfZero(a.TenantID), nullIfZero(a.Collection), int32(a.Number), a.Duration,
		nullIfZero(int32(a.StatusCode)), nullIfZero(a.ErrorClass), nullIfZero(a.Error), a.Response,
		nullTime(a.NextRetry), string(a.Outcome), a.Test, a.Replay,
	}
}

func nullIfZero[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// storable returns a with values every UTF-8 PostgreSQL database takes, so one odd attempt cannot make a
// whole batch fail: strings valid UTF-8 without NUL, numbers within integer, and a response of at most
// MaxResponseBytes that the caller's buffer does not alias.
func storable(a ledger.Attempt) ledger.Attempt {
	for _, s := range []*string{&a.DeliveryName, &a.Namespace, &a.Subscription, &a.EventID, &a.EventType,
		&a.TenantID, &a.Collection, &a.ErrorClass, &a.Error} {
		*s = validText(*s)
	}
	a.Number, a.StatusCode = clampInt32(a.Number), clampInt32(a.StatusCode)
	if len(a.Response) == 0 {
		a.Response = nil
	} else {
		a.Response = bytes.Clone(a.Response[:min(len(a.Response), MaxResponseBytes)])
	}
	return a
}

func validText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func clampInt32(n int) int {
	return max(min(n, math.MaxInt32), math.MinInt32)
}

func validOutcome(o ledger.Outcome) bool {
	switch o {
	case ledger.OutcomeSucceeded, ledger.OutcomeRetrying, ledger.OutcomeFailed, ledger.OutcomeRefused:
		return true
	}
	return false
}

// logDrops logs the attempts dropped since the last log, at most once per dropLogInterval unless final.
func (w *Writer) logDrops(final bool) {
	w.mu.Lock()
	full, invalid, why := w.unloggedFull, w.unloggedInvalid, w.lastInvalid
	if (full == 0 && invalid == 0) || (!final && time.Since(w.lastDropLog) < dropLogInterval) {
		w.mu.Unlock()
		return
	}
	w.unloggedFull, w.unloggedInvalid, w.lastInvalid, w.lastDropLog = 0, 0, "", time.Now()
	w.mu.Unlock()
	if full > 0 {
		w.log.Info("Ledger buffer full; attempts dropped", "dropped", full, "bufferSize", w.opts.BufferSize)
	}
	if invalid > 0 {
		w.log.Info("Attempts the ledger cannot store dropped", "dropped", invalid, "last", why)
	}
}

// purgeChunk deletes one chunk of expired rows and reports whether it was full. A failure is logged and
// retried at the next interval.
func (w *Writer) purgeChunk(ctx context.Context) (full bool) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	cutoff := w.opts.Now().Add(-w.opts.Retention)
	for _, sql := range []string{w.purgeSQL, w.purgePrunedSQL} {
		tag, err := w.pool.Exec(ctx, sql, cutoff)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error(err, "Ledger retention purge failed; retrying in a minute", "table", w.table.Qualified())
			}
			return false
		}
		full = full || tag.RowsAffected() >= purgeChunk
	}
	return full
}

// PurgeExpired deletes every row whose attempt is older than Retention, and every pruned delivery kept longer, in
// chunks, and returns how many it deleted; it does nothing when Retention is negative. Start purges the same rows, a chunk at a time, every
// minute.
func (w *Writer) PurgeExpired(ctx context.Context) (int64, error) {
	if w.opts.Retention < 0 {
		return 0, nil
	}
	cutoff := w.opts.Now().Add(-w.opts.Retention)
	var total int64
	for _, sql := range []string{w.purgeSQL, w.purgePrunedSQL} {
		for {
			tag, err := w.pool.Exec(ctx, sql, cutoff)
			if err != nil {
				return total, fmt.Errorf("delete ledger rows older than %s: %w", w.opts.Retention, err)
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < purgeChunk {
				break
			}
		}
	}
	return total, nil
}

// Close closes the connection pool. Call it after Start has returned; buffered attempts are not written.
func (w *Writer) Close() {
	w.pool.Close()
}
