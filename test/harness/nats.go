package harness

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookpost/hookpost/internal/source"
	natssource "github.com/hookpost/hookpost/internal/source/nats"
)

// natsStartTimeout bounds how long a start waits for the server to accept connections.
const natsStartTimeout = 10 * time.Second

// NATS is an in-process NATS server with JetStream (file storage) listening on 127.0.0.1.
type NATS struct {
	storeDir string

	mu     sync.Mutex
	port   int // -1 until the first start picks a free port; then fixed so clients reconnect to it
	server *natsserver.Server
}

// StartNATS starts a server with JetStream storing under a temporary directory and shuts it down when the test
// ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n, err := StartNATSServer(t.TempDir())
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(n.Shutdown)
	return n
}

// StartNATSServer starts a server with JetStream storing under storeDir on a free loopback port. The caller must
// call Shutdown. It is the variant for TestMain, Ginkgo's BeforeSuite and benchmark programs.
func StartNATSServer(storeDir string) (*NATS, error) {
	n := &NATS{storeDir: storeDir, port: natsserver.RANDOM_PORT}
	if err := n.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

// URL returns the client URL, stable across restarts.
func (n *NATS) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", n.port)
}

// Server returns the running server, or nil while it is shut down.
func (n *NATS) Server() *natsserver.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.server
}

// Shutdown stops the server and waits until it has stopped. Shutting down a stopped server does nothing.
func (n *NATS) Shutdown() {
	n.mu.Lock()
	s := n.server
	n.server = nil
	n.mu.Unlock()
	if s == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart shuts the server down and starts it again on the same port with the same store directory, so
// streams, consumers and stored messages survive.
func (n *NATS) Restart() error {
	n.Shutdown()
	return n.Start()
}

// Start starts a shut-down server again on the same port with the same store directory.
func (n *NATS) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.server != nil {
		return fmt.Errorf("nats server is already running")
	}
	opts := &natsserver.Options{
		ServerName: "hookpost-test",
		Host:       "127.0.0.1",
		Port:       n.port,
		JetStream:  true,
		StoreDir:   n.storeDir,
		NoLog:      true,
		NoSigs:     true,
	}
	var lastErr error
	// The port of a server that just shut down can take a moment to be free again.
	for attempt := 0; attempt < 10; attempt++ {
		s, err := natsserver.NewServer(opts)
		if err != nil {
			return fmt.Errorf("configure nats server: %w", err)
		}
		go s.Start()
		if s.ReadyForConnections(natsStartTimeout) {
			n.server = s
			n.port = s.Addr().(*net.TCPAddr).Port
			return nil
		}
		s.Shutdown()
		s.WaitForShutdown()
		lastErr = fmt.Errorf("nats server not ready within %s on port %d", natsStartTimeout, n.port)
		time.Sleep(100 * time.Millisecond)
	}
	return lastErr
}

// Producer connects as a producing application does, on a connection of its own that reconnects forever, and
// returns its JetStream handle; the connection closes when the test ends.
func (n *NATS) Producer(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("open jetstream: %v", err)
	}
	return nc, js
}

// PublishRetrying publishes ev to the default stream as a producing application does, retrying every 200 ms
// until the server acknowledges it or ctx ends. Each retry carries the same Nats-Msg-Id, so a publish that did
// land before its acknowledgement was lost (a server restart) is dropped as a duplicate.
func PublishRetrying(ctx context.Context, js jetstream.JetStream, ev source.Event) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := natssource.Publish(pctx, js, "", ev)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish event %s: %w", ev.ID, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ConsumerDrained reports whether the operator's durable consumer on the default stream has nothing left to
// hand over (no message pending, none delivered and unacknowledged), with the consumer's state for messages.
func ConsumerDrained(ctx context.Context, js jetstream.JetStream) (drained bool, state string) {
	c, err := js.Consumer(ctx, natssource.DefaultStream, natssource.DefaultDurable)
	if err != nil {
		return false, fmt.Sprintf("look up consumer: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, fmt.Sprintf("consumer info: %v", err)
	}
	return info.NumPending == 0 && info.NumAckPending == 0,
		fmt.Sprintf("{pending %d, ack pending %d, redelivered %d, acked through stream seq %d}",
			info.NumPending, info.NumAckPending, info.NumRedelivered, info.AckFloor.Stream)
}
