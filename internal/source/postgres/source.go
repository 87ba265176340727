// Package postgres is the transactional-outbox source: applications insert events into an outbox table in the
// same transaction as their business data, and Hookpost claims them by leasing rows (claimed_until) in short
// statements, so several replicas share one table, no transaction stays open while a batch is worked on, and a
// crashed replica's rows come back when its lease runs out (claim.go says how). A trigger's NOTIFY wakes
// waiting replicas; polling covers a lost notification.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookpost/hookpost/internal/backoff"
	"github.com/hookpost/hookpost/internal/pgschema"
	"github.com/hookpost/hookpost/internal/source"
)

// Name is the source kind reported by Name and in rejections.
const Name = "postgres"

// Defaults for Options.
const (
	DefaultSchema              = pgschema.DefaultSchema
	DefaultTable               = "integration_outbox"
	DefaultPollInterval        = time.Second
	DefaultRetention           = 24 * time.Hour
	DefaultReconnectBackoffMax = 5 * time.Second
	DefaultClaimLease          = 30 * time.Second
)

const (
	// retentionInterval is how often done rows are purged.
	retentionInterval = time.Minute
	// purgeChunk bounds one DELETE, so purging a large backlog never holds locks for long.
	purgeChunk = 10000
	// reconnectBackoffMin is the first wait after a failed connection or claim.
	reconnectBackoffMin = 100 * time.Millisecond
	// listenPingInterval is how often an idle LISTEN connection is checked, so a silently dead one is replaced.
	listenPingInterval = 30 * time.Second
	// giveBackTimeout bounds giving rows back, so Close does not hang on a database that is down: rows not given
	// back come back when their lease runs out.
	giveBackTimeout = 5 * time.Second
)

// errClosed is returned by a Source after Close.
var errClosed = errors.New("postgres source is closed")

// Options configure a Source.
type Options struct {
	// DSN is a libpq-style connection string or URL.
	DSN string
	// Schema holds the outbox table; default "public".
	Schema string
	// Table is the outbox table; default "integration_outbox".
	Table string
	// PollInterval is how often the table is polled when no notification arrives; default 1s.
	PollInterval time.Duration
	// Retention is how long done rows are kept before they are deleted; 0 means DefaultRetention, a negative
	// value keeps them forever. Rejected rows are never deleted: they wait for a human.
	Retention time.Duration
	// MaxPayloadBytes bounds a payload (its JSON text); default source.DefaultMaxDataBytes.
	MaxPayloadBytes int
	// ReconnectBackoffMax caps the exponential backoff between reconnection attempts; default 5s.
	ReconnectBackoffMax time.Duration
	// ClaimLease is how long a claim keeps other replicas off its rows; default 30s. An open batch extends it
	// every ClaimLease/3, so it bounds how soon a crashed replica's rows are claimed again, not how long a batch
	// may take.
	ClaimLease time.Duration
	// OnReject, when set, is called for every row set aside as malformed.
	OnReject func(source.Rejection)
	// Now returns the current time for processed_at and retention cutoffs; default time.Now. Waits use real
	// timers.
	Now func() time.Time
}

// Source claims events from an outbox table. It implements source.Source.
type Source struct {
	opts  Options
	table pgschema.Table
	sql   statements
	pool  *pgxpool.Pool

	wake         chan struct{} // buffered 1: a notification or a reconnect since the last claim
	life         context.Context
	endLife      context.CancelFunc // stops the listener and the heartbeats
	listenerDone chan struct{}
	heartbeats   sync.WaitGroup // one per open batch; added to only under mu while not closed

	mu          sync.Mutex
	listenErr   error // why the LISTEN connection is down, nil while it is up
	claimErr    error // why the last claim failed, nil after a successful one
	resumeAt    time.Time
	nextPurgeAt time.Time
	open        map[*batch]struct{}
	closed      bool
}

var _ source.Source = (*Source)(nil)

type statements struct {
	claim, reject, extend, ack, nack, release, purge, reread, watermark string
}

// New connects to the database and starts listening for notifications. It does not wait for the database: a
// database that is down is retried in the background and reported by Ready.
func New(ctx context.Context, opts Options) (*Source, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.MaxPayloadBytes <= 0 {
		opts.MaxPayloadBytes = source.DefaultMaxDataBytes
	}
	if opts.ReconnectBackoffMax <= 0 {
		opts.ReconnectBackoffMax = DefaultReconnectBackoffMax
	}
	if opts.ClaimLease <= 0 {
		opts.ClaimLease = DefaultClaimLease
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	poolConfig, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse postgres dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	if err != nil {
		return nil, fmt.Errorf("create postgres pool: %w", err)
	}
	t := pgschema.NewTable(opts.Schema, opts.Table, DefaultTable)
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	s := &Source{
		opts:         opts,
		table:        t,
		sql:          newStatements(t.Qualified()),
		pool:         pool,
		wake:         make(chan struct{}, 1),
		life:         life,
		endLife:      endLife,
		listenerDone: make(chan struct{}),
		open:         map[*batch]struct{}{},
		listenErr:    errors.New("not yet listening for outbox notifications"),
	}
	go s.listen(life, poolConfig.ConnConfig.Copy())
	return s, nil
}

// newStatements returns the source's SQL for the quoted table q. Each runs on its own and commits at once;
// claim.go explains the lease they share. claimed_until is always the database's now() plus a lease or delay
// given in seconds.
func newStatements(q string) statements {
	return statements{
		// The picked rows are locked only while this statement runs, so two claims never pick the same row. The
		// payload is read only when it is within the limit, so an oversize row costs no memory.
		claim: fmt.Sprintf(`WITH picked AS MATERIALIZED (
    SELECT id FROM %[1]s
    WHERE status = 'pending' AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE %[1]s AS o SET claimed_until = now() + make_interval(secs => $3)
    FROM picked WHERE o.id = picked.id
    RETURNING o.id, o.event_id::text, o.event_type, coalesce(o.tenant_id, ''), coalesce(o.collection, ''),
        CASE WHEN isfinite(o.occurred_at) THEN o.occurred_at END AS occurred_at, octet_length(o.payload::text) AS payload_size,
        CASE WHEN octet_length(o.payload::text) <= $2 THEN o.payload::text END AS payload, o.claimed_until
)
SELECT * FROM leased ORDER BY id`, q),
		reject: fmt.Sprintf(`UPDATE %s SET status = 'rejected', error = $2, processed_at = $3, claimed_until = NULL
WHERE id = $1`, q),
		// $2 is the batch's token. The count and the new token come back as one row, NULL when nothing matched.
		extend: fmt.Sprintf(`WITH extended AS (
    UPDATE %s SET claimed_until = now() + make_interval(secs => $3)
    WHERE id = ANY($1) AND status = 'pending' AND claimed_until = $2
    RETURNING claimed_until
)
SELECT count(*), max(claimed_until) FROM extended`, q),
		ack: fmt.Sprintf(`UPDATE %s SET status = 'done', error = NULL, claimed_until = NULL, processed_at = $2
WHERE id = ANY($1) AND status = 'pending'`, q),
		nack: fmt.Sprintf(`UPDATE %s SET claimed_until = now() + make_interval(secs => $3)
WHERE id = ANY($1) AND status = 'pending' AND claimed_until = $2`, q),
		release: fmt.Sprintf(`UPDATE %s SET claimed_until = NULL
WHERE id = ANY($1) AND status = 'pending' AND claimed_until = $2`, q),
		// Reread's page: done rows after ($1 processed_at, $2 id), before $3, by processed_at then id.
		reread: fmt.Sprintf(`SELECT id, event_id::text, event_type, coalesce(tenant_id, ''), coalesce(collection, ''),
    CASE WHEN isfinite(occurred_at) THEN occurred_at END, octet_length(payload::text),
    CASE WHEN octet_length(payload::text) <= $5 THEN payload::text END, processed_at
FROM %s WHERE status = 'done' AND processed_at >= $1 AND (processed_at, id) > ($1, $2) AND processed_at < $3
ORDER BY processed_at, id LIMIT $4`, q),
		// The lowest pending id (the partial index on pending ids holds it first), else one past the highest id
		// (the primary key's last entry); 0 for a table that never held a row, when nothing is below it anyway.
		watermark: fmt.Sprintf(`SELECT coalesce((SELECT min(id) FROM %[1]s WHERE status = 'pending'), (SELECT max(id) + 1 FROM %[1]s), 0)`, q),
		purge: fmt.Sprintf(`DELETE FROM %[1]s WHERE id IN (
    SELECT id FROM %[1]s WHERE status = 'done' AND processed_at < $1 LIMIT %[2]d)`, q, purgeChunk),
	}
}

// Name returns "postgres".
func (s *Source) Name() string { return Name }

// Next claims up to max pending rows, waiting for a notification or the poll interval while there are none.
// Connection failures are retried with backoff (and reported by Ready) until ctx ends.
func (s *Source) Next(ctx context.Context, max int) (source.Batch, error) {
	if max <= 0 {
		return nil, fmt.Errorf("max batch size must be positive, got %d", max)
	}
	failures := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.isClosed() {
			return nil, errClosed
		}
		if wait := s.pauseRemaining(); wait > 0 {
			if err := backoff.Sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		s.purgeIfDue(ctx)
		b, setAside, err := s.claim(ctx, max)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.setClaimErr(err)
			failures++
			if err := backoff.Sleep(ctx, backoff.Exponential(failures, reconnectBackoffMin, s.opts.ReconnectBackoffMax)); err != nil {
				return nil, err
			}
			continue
		}
		s.setClaimErr(nil)
		failures = 0
		if b != nil {
			return b, nil
		}
		if setAside {
			continue // rows behind the rejected ones may be waiting
		}
		if err := s.waitForWork(ctx); err != nil {
			return nil, err
		}
	}
}

func (s *Source) waitForWork(ctx context.Context) error {
	timer := time.NewTimer(s.opts.PollInterval)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.wake:
	case <-timer.C:
	}
	return nil
}

func (s *Source) signalWake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pauseFor holds back claims after a Nack, so the given-back rows are not claimed again at once by this replica.
func (s *Source) pauseFor(delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if resume := time.Now().Add(delay); resume.After(s.resumeAt) {
		s.resumeAt = resume
	}
}

func (s *Source) pauseRemaining() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Until(s.resumeAt)
}

func (s *Source) purgeIfDue(ctx context.Context) {
	if s.opts.Retention < 0 {
		return
	}
	now := s.opts.Now()
	s.mu.Lock()
	due := !now.Before(s.nextPurgeAt)
	if due {
		s.nextPurgeAt = now.Add(retentionInterval)
	}
	s.mu.Unlock()
	if !due {
		return
	}
	// One chunk per claim, so a large first purge (after a backlog, or a shortened retention) never holds up
	// ingest: while chunks come back full, the next claim deletes the next chunk. A failed purge is retried at
	// the next interval; the claim that follows reports connection trouble.
	tag, err := s.pool.Exec(ctx, s.sql.purge, now.Add(-s.opts.Retention))
	if err == nil && tag.RowsAffected() >= purgeChunk {
		s.mu.Lock()
		s.nextPurgeAt = now
		s.mu.Unlock()
	}
}

// PurgeDone deletes every done row processed longer than Retention ago, in chunks, and returns how many it
// deleted; it does nothing when Retention is negative. Next purges the same rows a chunk per claim, every minute.
func (s *Source) PurgeDone(ctx context.Context) (int64, error) {
	if s.opts.Retention < 0 {
		return 0, nil
	}
	cutoff := s.opts.Now().Add(-s.opts.Retention)
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, s.sql.purge, cutoff)
		if err != nil {
			return total, fmt.Errorf("delete done rows older than %s: %w", s.opts.Retention, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < purgeChunk {
			return total, nil
		}
	}
}

// Watermark returns the lowest id still pending, or one past the highest id when none is: every row below it is
// done (acknowledged) or rejected. Ids are drawn when a row is inserted and a transaction may commit after one that
// drew a later id, so a row can become pending below the watermark already read: ordered delivery follows id
// order, which is the order a producer wrote a key's events when it writes them one transaction after the other
// (docs/outbox.md). Both subqueries read one index entry.
func (s *Source) Watermark(ctx context.Context) (uint64, error) {
	var w int64
	if err := s.pool.QueryRow(ctx, s.sql.watermark).Scan(&w); err != nil {
		return 0, fmt.Errorf("read the watermark of %s: %w", s.table.Qualified(), err)
	}
	return uint64(max(w, 0)), nil
}

// Ready reports why the source cannot work: the LISTEN connection is down, the last claim failed, or the
// database does not answer.
func (s *Source) Ready(ctx context.Context) error {
	s.mu.Lock()
	listenErr, claimErr, closed := s.listenErr, s.claimErr, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return errClosed
	case listenErr != nil:
		return listenErr
	case claimErr != nil:
		return claimErr
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

func (s *Source) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Source) setClaimErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claimErr = err
}

func (s *Source) setListenErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listenErr = err
}

// Close gives back open batches, so their rows are claimable at once, stops listening and closes the pool.
func (s *Source) Close() error {
	s.shutdown(true)
	return nil
}

// shutdown stops the source. Without giveBack the open batches' rows wait for their leases to run out, as after
// a crash; the tests play a crashed replica that way (export_test.go).
func (s *Source) shutdown(giveBack bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	open := make([]*batch, 0, len(s.open))
	for b := range s.open {
		open = append(open, b)
	}
	s.mu.Unlock()
	if giveBack {
		for _, b := range open {
			_ = b.settle(context.Background(), b.giveBack)
		}
	}
	s.endLife()
	s.heartbeats.Wait()
	<-s.listenerDone
	s.pool.Close()
}

// listen keeps a dedicated connection LISTENing on the table's channel, reconnecting with backoff.
func (s *Source) listen(ctx context.Context, config *pgx.ConnConfig) {
	defer close(s.listenerDone)
	failures := 0
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, config, func() { failures = 0 })
		if ctx.Err() != nil {
			return
		}
		s.setListenErr(fmt.Errorf("listen for outbox notifications: %w", err))
		failures++
		if backoff.Sleep(ctx, backoff.Exponential(failures, reconnectBackoffMin, s.opts.ReconnectBackoffMax)) != nil {
			return
		}
	}
}

func (s *Source) listenOnce(ctx context.Context, config *pgx.ConnConfig, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	channel := ChannelName(s.table.Schema, s.table.Name)
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	s.setListenErr(nil)
	connected()
	s.signalWake() // rows inserted while disconnected notified nobody
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenPingInterval)
		_, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			s.signalWake()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}
