// Package harness is the test harness: it starts real servers (a throwaway PostgreSQL cluster, an in-process
// NATS server with JetStream, a kube-apiserver and etcd with Hookpost's CRDs, the operator as a child process,
// and webhook receivers) on loopback addresses for the integration and end-to-end suites, the benchmark program
// and the demo. Each server can be stopped, killed and restarted on the same port and data directory, so
// suites can prove recovery from a crash.
package harness
