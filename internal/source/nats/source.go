// Package nats is the JetStream source: producers publish events to subjects under a prefix (the subject's
// remainder is the event type) and Hookpost reads them through a durable pull consumer with explicit acks, so
// several replicas share the consumer and an unacknowledged event is redelivered after AckWait.
package nats

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookpost/hookpost/internal/backoff"
	"github.com/hookpost/hookpost/internal/source"
)

// Name is the source kind reported by Name and in rejections.
const Name = "nats"

// Headers a producer sets besides the subject and body; Publish sets them from an Event.
const (
	HeaderMsgID      = jetstream.MsgIDHeader // "Nats-Msg-Id": the event id, deduplicated by the stream
	HeaderTenantID   = "Hookpost-Tenant-Id"
	HeaderCollection = "Hookpost-Collection"
	HeaderOccurredAt = "Hookpost-Occurred-At" // RFC 3339; the publish time when absent
)

// Defaults for Options.
const (
	DefaultStream        = "HOOKPOST"
	DefaultSubjectPrefix = "hookpost.events."
	DefaultDurable       = "hookpost"
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 1024
	DefaultReconnectWait = time.Second
	// DefaultDuplicateWindow is the dedup window of a stream created by the source.
	DefaultDuplicateWindow = 2 * time.Minute
)

const (
	// pullWait bounds one pull request, so a pull lost to a server restart is replaced soon.
	pullWait = 5 * time.Second
	// minPullWait is the shortest pull worth sending to the server.
	minPullWait = 20 * time.Millisecond
	// retryBackoffMin and retryBackoffMax bound the wait after a failed pull.
	retryBackoffMin = 100 * time.Millisecond
	retryBackoffMax = 5 * time.Second
)

// Options configure a Source.
type Options struct {
	// URL is the NATS server URL (or a comma-separated list).
	URL string
	// Stream is the JetStream stream holding the events; default "HOOKPOST".
	Stream string
	// SubjectPrefix precedes the event type in the subject and ends with "."; default "hookpost.events.".
	SubjectPrefix string
	// Durable is the durable consumer's name, shared by all replicas; default "hookpost".
	Durable string
	// CreateStream creates the stream, or updates it to capture SubjectPrefix + ">", when true. When false a
	// missing stream is an error.
	CreateStream bool
	// MaxPayloadBytes bounds a message body; default source.DefaultMaxDataBytes.
	MaxPayloadBytes int
	// AckWait is how long a fetched, unsettled message stays with this consumer before redelivery; default 30s.
	AckWait time.Duration
	// MaxAckPending bounds the messages fetched but not yet acked, across replicas; default 1024. A Next with a
	// larger max gets at most this many.
	MaxAckPending int
	// ReconnectWait is the pause between reconnection attempts, which go on forever; default 1s.
	ReconnectWait time.Duration
	// CredsFile is a NATS credentials file (user JWT and NKey seed); empty connects without.
	CredsFile string
	// OnReject, when set, is called for every message terminated as poison.
	OnReject func(source.Rejection)
}

// Source reads events from a JetStream durable pull consumer. It implements source.Source.
type Source struct {
	opts     Options
	conn     *nats.Conn
	consumer jetstream.Consumer
	rejected atomic.Uint64

	mu       sync.Mutex
	fetchErr error // why the last pull failed, nil after a successful one

	closed    chan struct{} // closed by Close; stops the batches' progress tickers
	closeOnce sync.Once
}

var _ source.Source = (*Source)(nil)

// New connects, makes sure the stream exists (creating it when asked) and creates or updates the durable
// consumer.
func New(ctx context.Context, opts Options) (*Source, error) {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	if !strings.HasSuffix(opts.SubjectPrefix, ".") {
		return nil, fmt.Errorf("subject prefix %q must end with \".\"", opts.SubjectPrefix)
	}
	if opts.Durable == "" {
		opts.Durable = DefaultDurable
	}
	if opts.MaxPayloadBytes <= 0 {
		opts.MaxPayloadBytes = source.DefaultMaxDataBytes
	}
	if opts.AckWait <= 0 {
		opts.AckWait = DefaultAckWait
	}
	if opts.MaxAckPending <= 0 {
		opts.MaxAckPending = DefaultMaxAckPending
	}
	if opts.ReconnectWait <= 0 {
		opts.ReconnectWait = DefaultReconnectWait
	}
	connOpts := []nats.Option{nats.Name("hookpost"), nats.MaxReconnects(-1), nats.ReconnectWait(opts.ReconnectWait)}
	if opts.CredsFile != "" {
		connOpts = append(connOpts, nats.UserCredentials(opts.CredsFile))
	}
	conn, err := nats.Connect(opts.URL, connOpts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", redactURLs(opts.URL), err)
	}
	consumer, err := setUp(ctx, conn, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &Source{opts: opts, conn: conn, consumer: consumer, closed: make(chan struct{})}, nil
}

func setUp(ctx context.Context, conn *nats.Conn, opts Options) (jetstream.Consumer, error) {
	js, err := jetstream.New(conn)
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	subjects := opts.SubjectPrefix + ">"
	var stream jetstream.Stream
	if opts.CreateStream {
		stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:       opts.Stream,
			Subjects:   []string{subjects},
			Storage:    jetstream.FileStorage,
			Duplicates: DefaultDuplicateWindow,
		})
		if err != nil {
			return nil, fmt.Errorf("create or update stream %s for %s: %w", opts.Stream, subjects, err)
		}
	} else {
		stream, err = js.Stream(ctx, opts.Stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("stream %s does not exist: create it capturing %s, or let Hookpost create it: %w",
				opts.Stream, subjects, err)
		}
		if err != nil {
			return nil, fmt.Errorf("look up stream %s: %w", opts.Stream, err)
		}
	}
	consumer, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       opts.Durable,
		Description:   "Hookpost webhook ingest",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opts.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: opts.MaxAckPending,
		FilterSubject: subjects,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update consumer %s on stream %s: %w", opts.Durable, opts.Stream, err)
	}
	return consumer, nil
}

// Name returns "nats".
func (s *Source) Name() string { return Name }

// Rejected returns how many messages this source has terminated as poison.
func (s *Source) Rejected() uint64 { return s.rejected.Load() }

// Next waits for at least one message, then takes whatever else is available at once, up to max. Pull failures
// (a server away, a reconnect) are retried with backoff and reported by Ready until ctx ends.
func (s *Source) Next(ctx context.Context, max int) (source.Batch, error) {
	if max <= 0 {
		return nil, fmt.Errorf("max batch size must be positive, got %d", max)
	}
	max = min(max, s.opts.MaxAckPending)
	failures := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		msgs, err := s.pull(ctx, max)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if s.conn.IsClosed() {
				return nil, errors.New("nats source is closed")
			}
			s.setFetchErr(err)
			failures++
			if err := backoff.Sleep(ctx, backoff.Exponential(failures, retryBackoffMin, retryBackoffMax)); err != nil {
				return nil, err
			}
			continue
		}
		s.setFetchErr(nil)
		failures = 0
		if events, kept := s.sortOut(msgs); len(events) > 0 {
			return newBatch(events, kept, s.opts.AckWait, s.closed), nil
		}
	}
}

// pull blocks for the first message (up to pullWait), then fetches the rest without waiting.
func (s *Source) pull(ctx context.Context, max int) ([]jetstream.Msg, error) {
	waitCtx, cancel := context.WithTimeout(ctx, pullWait)
	defer cancel()
	if deadline, _ := waitCtx.Deadline(); time.Until(deadline) < minPullWait {
		<-waitCtx.Done() // too little time left for a pull request; the caller's ctx is about to end
		return nil, nil
	}
	first, err := s.consumer.Fetch(1, jetstream.FetchContext(waitCtx))
	if err != nil {
		return nil, fmt.Errorf("pull from consumer %s: %w", s.opts.Durable, err)
	}
	msgs := collect(first)
	if len(msgs) == 0 {
		if err := first.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("pull from consumer %s: %w", s.opts.Durable, err)
		}
		return nil, nil
	}
	if max > 1 {
		rest, err := s.consumer.FetchNoWait(max - 1)
		if err == nil {
			msgs = append(msgs, collect(rest)...) // a failure here only shortens the batch
		}
	}
	return msgs, nil
}

func collect(b jetstream.MessageBatch) []jetstream.Msg {
	var msgs []jetstream.Msg
	for m := range b.Messages() {
		msgs = append(msgs, m)
	}
	return msgs
}

// sortOut turns messages into events, terminating poison on the way.
func (s *Source) sortOut(msgs []jetstream.Msg) ([]source.Event, []jetstream.Msg) {
	var (
		events []source.Event
		kept   []jetstream.Msg
	)
	for _, m := range msgs {
		ev, reason := s.toEvent(m)
		if reason == "" {
			events = append(events, ev)
			kept = append(kept, m)
			continue
		}
		// A failed Term only means the message comes back after AckWait and is terminated then.
		_ = m.TermWithReason(reason)
		s.rejected.Add(1)
		if s.opts.OnReject != nil {
			s.opts.OnReject(source.Rejection{Source: Name, ID: ev.ID, Reason: reason})
		}
	}
	return events, kept
}

// toEvent reads a message; the reason is non-empty when the message is poison (ev.ID is set either way).
func (s *Source) toEvent(m jetstream.Msg) (ev source.Event, reason string) {
	meta, err := m.Metadata()
	if err != nil {
		return ev, fmt.Sprintf("message has no jetstream metadata: %v", err)
	}
	return decodeMessage(message{subject: m.Subject(), headers: m.Headers(), data: m.Data(), stream: meta.Stream,
		sequence: meta.Sequence.Stream, published: meta.Timestamp}, s.opts.SubjectPrefix, s.opts.MaxPayloadBytes)
}

// message is what decodeMessage reads of a JetStream message.
type message struct {
	subject   string
	headers   nats.Header
	data      []byte
	stream    string
	sequence  uint64
	published time.Time
}

// decodeMessage turns a message into an event, or says why it is poison, naming the subject, header or body to
// fix. It is a pure function of the message (FuzzDecodeMessage feeds it arbitrary ones): an event it returns
// passes source.ValidateEvent, and a message it refuses has a non-empty reason. The event's ID is set either
// way, for the rejection.
func decodeMessage(m message, prefix string, maxPayloadBytes int) (ev source.Event, reason string) {
	h := m.headers
	ev.ID = h.Get(HeaderMsgID)
	if ev.ID == "" {
		ev.ID = fmt.Sprintf("%s-%d", m.stream, m.sequence)
	}
	if !strings.HasPrefix(m.subject, prefix) {
		return ev, fmt.Sprintf("subject %q lacks the prefix %q: publish to %s<event type>", m.subject, prefix, prefix)
	}
	ev.Type = strings.TrimPrefix(m.subject, prefix)
	ev.TenantID = h.Get(HeaderTenantID)
	ev.Collection = h.Get(HeaderCollection)
	ev.OccurredAt = m.published
	if v := h.Get(HeaderOccurredAt); v != "" {
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return ev, fmt.Sprintf("header %s %q is not an RFC 3339 time such as 2025-11-16T10:30:00Z", HeaderOccurredAt, v)
		}
		ev.OccurredAt = at
	}
	ev.Data = m.data
	ev.Source, ev.Position = Name, m.sequence
	if reason := source.ValidateType(ev.Type); reason != "" {
		return ev, "subject: " + reason
	}
	if reason := source.ValidateAttributes(ev); reason != "" {
		return ev, "headers: " + reason
	}
	if reason := source.ValidateData(ev.Data, maxPayloadBytes); reason != "" {
		return ev, "body: " + reason
	}
	return ev, ""
}

// Watermark returns one past the durable consumer's ack floor: every message of the stream below it that the
// consumer takes has been acknowledged or terminated, by whichever replica fetched it. One request to the server.
func (s *Source) Watermark(ctx context.Context) (uint64, error) {
	info, err := s.consumer.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read consumer %s: %w", s.opts.Durable, err)
	}
	return info.AckFloor.Stream + 1, nil
}

// Ready reports whether the connection is up and the last pull worked.
func (s *Source) Ready(ctx context.Context) error {
	if status := s.conn.Status(); status != nats.CONNECTED {
		if err := s.conn.LastError(); err != nil {
			return fmt.Errorf("nats connection is %s: %w", status, err)
		}
		return fmt.Errorf("nats connection is %s", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetchErr
}

func (s *Source) setFetchErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetchErr = err
}

// Close closes the connection. Messages of unsettled batches are redelivered after AckWait.
func (s *Source) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.conn.Close()
	return nil
}

// redactURLs returns a comma-separated list of server URLs with their credentials (user, password or token)
// replaced, so an error naming the servers can be logged.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)" // the parse error would repeat the credentials
		case u.User != nil:
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
