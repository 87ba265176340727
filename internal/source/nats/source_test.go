package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
	"github.com/hookpost/hookpost/test/harness"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newSource starts a server and a Source that creates the default stream.
func newSource(t *testing.T, opts natssource.Options) (*harness.NATS, *natssource.Source) {
	t.Helper()
	server := harness.StartNATS(t)
	opts.URL = server.URL()
	opts.CreateStream = true
	if opts.ReconnectWait == 0 {
		opts.ReconnectWait = 50 * time.Millisecond
	}
	src, err := natssource.New(testContext(t), opts)
	if err != nil {
		t.Fatalf("new source: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return server, src
}

// producer returns a JetStream handle on a connection of its own, as a producing application has.
func producer(t *testing.T, server *harness.NATS) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return server.Producer(t)
}

func orderEvent(i int) source.Event {
	return source.Event{
		ID:         fmt.Sprintf("order-%d", i),
		Type:       "order.created",
		TenantID:   "tenant-1",
		Collection: "orders",
		OccurredAt: time.Date(2025, 11, 16, 10, 30, 0, i, time.UTC),
		Data:       json.RawMessage(fmt.Sprintf(`{"order_id":%d}`, i)),
	}
}

func publish(t *testing.T, js jetstream.JetStream, events ...source.Event) {
	t.Helper()
	for _, ev := range events {
		if err := natssource.Publish(testContext(t), js, "", ev); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

func drain(t *testing.T, src *natssource.Source, max, want int) []source.Event {
	t.Helper()
	ctx := testContext(t)
	var got []source.Event
	for len(got) < want {
		b, err := src.Next(ctx, max)
		if err != nil {
			t.Fatalf("next after %d of %d events: %v", len(got), want, err)
		}
		if n := len(b.Events()); n == 0 || n > max {
			t.Fatalf("batch of %d events, want 1..%d", n, max)
		}
		got = append(got, b.Events()...)
		if err := b.Ack(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	return got
}

func expectNothingMore(t *testing.T, src *natssource.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if b, err := src.Next(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want nothing more, got batch %v err %v", b, err)
	}
}

func consumerInfo(t *testing.T, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	ctx := testContext(t)
	c, err := js.Consumer(ctx, natssource.DefaultStream, natssource.DefaultDurable)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	return info
}

func TestPublishedEventsArriveOnceInOrderAndAcked(t *testing.T) {
	server, src := newSource(t, natssource.Options{})
	nc, js := producer(t, server)
	const n = 100
	for i := range n {
		publish(t, js, orderEvent(i))
	}
	// A plain publish without Hookpost headers gets a stream-sequence id and the publish time.
	publishedAt := time.Now()
	if err := nc.Publish("hookpost.events.user.registered", []byte(`{"user_id":42}`)); err != nil {
		t.Fatalf("plain publish: %v", err)
	}

	events := drain(t, src, 30, n+1)
	for i, ev := range events[:n] {
		want := orderEvent(i)
		if ev.ID != want.ID || ev.Type != want.Type || ev.TenantID != want.TenantID ||
			ev.Collection != want.Collection || !ev.OccurredAt.Equal(want.OccurredAt) || string(ev.Data) != string(want.Data) {
			t.Fatalf("event %d = %+v, want %+v", i, ev, want)
		}
	}
	plain := events[n]
	if plain.ID != fmt.Sprintf("%s-%d", natssource.DefaultStream, n+1) || plain.Type != "user.registered" || plain.TenantID != "" {
		t.Fatalf("plain event = %+v", plain)
	}
	if d := plain.OccurredAt.Sub(publishedAt); d < -time.Second || d > 5*time.Second {
		t.Fatalf("plain event occurred at %v, want about the publish time %v", plain.OccurredAt, publishedAt)
	}
	expectNothingMore(t, src)
	if info := consumerInfo(t, js); info.NumAckPending != 0 || info.NumPending != 0 || info.Delivered.Stream != n+1 {
		t.Fatalf("consumer after acking everything: ack pending %d, pending %d, delivered %d",
			info.NumAckPending, info.NumPending, info.Delivered.Stream)
	}
	if err := src.Ready(testContext(t)); err != nil {
		t.Fatalf("ready: %v", err)
	}
}

func TestSameMsgIDWithinTheWindowYieldsOneEvent(t *testing.T) {
	server, src := newSource(t, natssource.Options{})
	_, js := producer(t, server)
	publish(t, js, orderEvent(1), orderEvent(1), orderEvent(2))
	events := drain(t, src, 10, 2)
	if events[0].ID != "order-1" || events[1].ID != "order-2" {
		t.Fatalf("events %s, %s: want order-1 once, then order-2", events[0].ID, events[1].ID)
	}
	expectNothingMore(t, src)
}

func TestPoisonIsTerminatedAndTheNextMessageFlows(t *testing.T) {
	var (
		mu         sync.Mutex
		rejections []source.Rejection
	)
	server, src := newSource(t, natssource.Options{MaxPayloadBytes: 100, OnReject: func(r source.Rejection) {
		mu.Lock()
		defer mu.Unlock()
		rejections = append(rejections, r)
	}})
	nc, js := producer(t, server)
	ctx := testContext(t)
	poison := []*nats.Msg{
		{Subject: "hookpost.events.order.created", Data: []byte(`{"order_id":`)},
		{Subject: "hookpost.events.order.created", Data: []byte(`[1,2]`)},
		{Subject: "hookpost.events.order.created", Data: []byte(`{"blob":"` + strings.Repeat("x", 200) + `"}`)},
		{Subject: "hookpost.events.order.created", Data: []byte(`{}`), Header: nats.Header{natssource.HeaderOccurredAt: {"yesterday"}}},
	}
	for _, m := range poison {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatalf("publish poison: %v", err)
		}
	}
	publish(t, js, orderEvent(7))
	_ = nc

	events := drain(t, src, 10, 1)
	if events[0].ID != "order-7" {
		t.Fatalf("got %+v, want order-7", events[0])
	}
	expectNothingMore(t, src)
	if src.Rejected() != 4 {
		t.Fatalf("rejected count %d, want 4", src.Rejected())
	}
	mu.Lock()
	defer mu.Unlock()
	wantReasons := []string{"not valid JSON", "not an object", "over the 100 byte limit", "not an RFC 3339 time"}
	for i, want := range wantReasons {
		if i >= len(rejections) || !strings.Contains(rejections[i].Reason, want) || rejections[i].Source != "nats" ||
			rejections[i].ID != fmt.Sprintf("%s-%d", natssource.DefaultStream, i+1) {
			t.Fatalf("rejections %+v: want #%d to say %q", rejections, i, want)
		}
	}
	if info := consumerInfo(t, js); info.NumAckPending != 0 {
		t.Fatalf("terminated messages still pending ack: %d", info.NumAckPending)
	}
}

func TestNackedBatchIsRedeliveredAfterTheDelay(t *testing.T) {
	server, src := newSource(t, natssource.Options{})
	_, js := producer(t, server)
	publish(t, js, orderEvent(1))
	ctx := testContext(t)

	first, err := src.Next(ctx, 10)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	const delay = 300 * time.Millisecond
	nackedAt := time.Now()
	if err := first.Nack(ctx, delay, errors.New("api server unavailable")); err != nil {
		t.Fatalf("nack: %v", err)
	}
	if err := first.Ack(ctx); err == nil {
		t.Fatalf("ack after nack succeeded, want an already-settled error")
	}
	again := drain(t, src, 10, 1)
	if waited := time.Since(nackedAt); waited < delay {
		t.Fatalf("redelivered after %s, before the %s delay", waited, delay)
	}
	if again[0].ID != first.Events()[0].ID {
		t.Fatalf("redelivered %s, want %s", again[0].ID, first.Events()[0].ID)
	}
	expectNothingMore(t, src)
}

func TestMissingStreamIsAClearError(t *testing.T) {
	server := harness.StartNATS(t)
	_, err := natssource.New(testContext(t), natssource.Options{URL: server.URL(), Stream: "ABSENT"})
	if err == nil || !strings.Contains(err.Error(), "stream ABSENT does not exist") {
		t.Fatalf("want a missing-stream error, got %v", err)
	}
}

// TestConnectErrorHidesCredentials: a --nats-url with a user and password, or a token, that cannot be reached gives
// an error naming the server, never the credentials.
func TestConnectErrorHidesCredentials(t *testing.T) {
	server := harness.StartNATS(t)
	addr := strings.TrimPrefix(server.URL(), "nats://")
	server.Shutdown() // nothing listens there any more
	for _, u := range []string{"nats://alice:s3cret-pass@" + addr, "nats://s3cret-token@" + addr + ",nats://bob:s3cret-too@" + addr} {
		_, err := natssource.New(testContext(t), natssource.Options{URL: u})
		if err == nil {
			t.Fatalf("connecting to a stopped server succeeded")
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q shows a credential or does not name the server %s", err, addr)
		}
	}
}

func TestEveryEventArrivesAcrossAServerRestart(t *testing.T) {
	server, src := newSource(t, natssource.Options{})
	_, js := producer(t, server)
	ctx := testContext(t)
	for i := range 20 {
		publish(t, js, orderEvent(i))
	}
	seen := map[string]bool{}
	for _, ev := range drain(t, src, 5, 10) {
		seen[ev.ID] = true
	}

	server.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for src.Ready(ctx) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("ready still reports healthy 10s after the server went away")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("ready while down: %v", src.Ready(ctx))

	received := make(chan []source.Event)
	go func() {
		var got []source.Event
		for ctx.Err() == nil {
			b, err := src.Next(ctx, 7)
			if err != nil {
				break
			}
			got = append(got, b.Events()...)
			if err := b.Ack(ctx); err != nil {
				t.Logf("ack (the event comes back): %v", err)
			}
			received <- got
		}
	}()
	time.Sleep(300 * time.Millisecond) // Next keeps failing meanwhile
	if err := server.Start(); err != nil {
		t.Fatalf("start the server again: %v", err)
	}
	for i := 20; i < 40; i++ {
		ev := orderEvent(i)
		for {
			err := natssource.Publish(ctx, js, "", ev)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("publish after restart: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for len(seen) < 40 {
		select {
		case got := <-received:
			for _, ev := range got {
				seen[ev.ID] = true
			}
		case <-ctx.Done():
			t.Fatalf("saw %d of 40 events before the deadline", len(seen))
		}
	}
	for i := range 40 {
		if !seen[fmt.Sprintf("order-%d", i)] {
			t.Fatalf("order-%d never arrived", i)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for src.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 10s after the restart: %v", src.Ready(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNextAfterCloseFails(t *testing.T) {
	_, src := newSource(t, natssource.Options{})
	if err := src.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := src.Next(testContext(t), 1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("next after close: %v, want a closed error", err)
	}
	if err := src.Ready(testContext(t)); err == nil {
		t.Fatalf("ready after close reported healthy")
	}
}

// TestABatchWorkedOnLongerThanAckWaitIsNotRedelivered holds a batch for several times AckWait, as a batch fanned
// out to many subscriptions may be, while a second replica asks for work: it must get nothing.
func TestABatchWorkedOnLongerThanAckWaitIsNotRedelivered(t *testing.T) {
	const ackWait = 500 * time.Millisecond
	server, src := newSource(t, natssource.Options{AckWait: ackWait})
	_, js := producer(t, server)
	publish(t, js, orderEvent(1))
	ctx := testContext(t)

	b, err := src.Next(ctx, 10)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	replica, err := natssource.New(ctx, natssource.Options{URL: server.URL(), AckWait: ackWait})
	if err != nil {
		t.Fatalf("second replica: %v", err)
	}
	defer replica.Close()
	wait, cancel := context.WithTimeout(ctx, 6*ackWait)
	defer cancel()
	if other, err := replica.Next(wait, 10); err == nil {
		t.Fatalf("the second replica got %d events that the first was still working on", len(other.Events()))
	}
	if err := b.Ack(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	expectNothingMore(t, src)
}

// TestHostileIDsAttributesAndDeepPayloadsAreTerminatedAndTheNextFlows publishes what a careless or hostile
// producer can: a Nats-Msg-Id, tenant or collection carrying a terminal escape sequence, and a payload nested
// deeper than source.MaxDataDepth. Each is terminated with a reason naming the header or the depth, and the
// event behind them is delivered.
func TestHostileIDsAttributesAndDeepPayloadsAreTerminatedAndTheNextFlows(t *testing.T) {
	var (
		mu         sync.Mutex
		rejections []source.Rejection
	)
	server, src := newSource(t, natssource.Options{OnReject: func(r source.Rejection) {
		mu.Lock()
		defer mu.Unlock()
		rejections = append(rejections, r)
	}})
	_, js := producer(t, server)
	ctx := testContext(t)
	deep := `{"a":` + strings.Repeat("[", source.MaxDataDepth) + strings.Repeat("]", source.MaxDataDepth) + "}"
	hostile := []*nats.Msg{
		{Subject: "hookpost.events.order.created", Data: []byte(`{}`), Header: nats.Header{natssource.HeaderMsgID: {"evt-1\x1b[2J"}}},
		{Subject: "hookpost.events.order.created", Data: []byte(`{}`), Header: nats.Header{natssource.HeaderTenantID: {"\x1b]0;pwned\x07"}}},
		{Subject: "hookpost.events.order.created", Data: []byte(`{}`), Header: nats.Header{natssource.HeaderCollection: {"posts\u009b31m"}}},
		{Subject: "hookpost.events.order.created", Data: []byte(deep)},
	}
	for _, m := range hostile {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	publish(t, js, orderEvent(8))

	if events := drain(t, src, 10, 1); events[0].ID != "order-8" {
		t.Fatalf("got %+v, want order-8", events[0])
	}
	expectNothingMore(t, src)
	mu.Lock()
	defer mu.Unlock()
	wantReasons := []string{
		`headers: event id "evt-1\x1b[2J" has a control character (U+001B) at byte 5`,
		`headers: tenant id "\x1b]0;pwned\a" has a control character (U+001B) at byte 0`,
		`headers: collection "posts\u009b31m" has a control character (U+009B) at byte 5`,
		"body: payload nests objects and arrays 101 levels deep, over the limit of 100",
	}
	if len(rejections) != len(wantReasons) {
		t.Fatalf("rejections %+v, want %d", rejections, len(wantReasons))
	}
	for i, want := range wantReasons {
		if !strings.Contains(rejections[i].Reason, want) {
			t.Errorf("rejection #%d says %q, want it to contain %q", i, rejections[i].Reason, want)
		}
	}
	if info := consumerInfo(t, js); info.NumAckPending != 0 {
		t.Fatalf("terminated messages still pending ack: %d", info.NumAckPending)
	}
}

// The watermark is one past the consumer's ack floor: an unacknowledged batch holds it at its first message, and
// events carry their stream sequence as positions.
func TestWatermarkStaysBelowTheFirstUnacknowledgedEvent(t *testing.T) {
	server, src := newSource(t, natssource.Options{})
	_, js := producer(t, server)
	ctx := testContext(t)
	for i := range 4 {
		publish(t, js, orderEvent(i))
	}
	first, err := src.Next(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	var rest []source.Event
	for len(rest) < 2 {
		b, err := src.Next(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, b.Events()...)
		if err := b.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, ev := range append(append([]source.Event(nil), first.Events()...), rest...) {
		if ev.Position != uint64(i+1) {
			t.Fatalf("event %d has position %d, want its stream sequence %d", i, ev.Position, i+1)
		}
	}
	if w, err := src.Watermark(ctx); err != nil || w != 1 {
		t.Fatalf("watermark with the first batch unacknowledged = %d, %v; want 1", w, err)
	}
	if err := first.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	// An ack is asynchronous for the server's bookkeeping: wait for the floor to move.
	deadline := time.Now().Add(5 * time.Second)
	for {
		w, err := src.Watermark(ctx)
		if err == nil && w == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watermark with every event acknowledged = %d, %v; want 5", w, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
