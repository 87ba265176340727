// Package harness is the test harness: it starts real servers (a throwaway PostgreSQL cluster, an in-process
// NATS server with JetStream) on loopback addresses for the unit, integration and end-to-end suites, and for
// benchmark programs. Each server can be stopped, killed and restarted on the same port and data directory, so
// suites can prove recovery from a crash.
package harness
