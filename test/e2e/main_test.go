// Package e2e holds crash tests against real processes: kube-apiserver and etcd, PostgreSQL, a NATS server, the
// operator binary as a child process and HTTP receivers on loopback. Each test kills or restarts one of them
// mid-run and then checks that every event reached its receiver once per matching subscription at least, that no
// (subscription, event) pair got two WebhookDeliveries, and, with a ledger, that every pair has a success row.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/hookpost/hookpost/test/harness"
)

// suite is what TestMain starts once for every test: the operator binary and one control plane. Tests keep
// apart by namespace and clean up their subscriptions, so an operator started later does not match their events.
var suite struct {
	operatorBinary string
	cp             *harness.ControlPlane
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "hookpost-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if suite.operatorBinary, err = harness.BuildOperator(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if suite.cp, err = harness.StartControlPlane(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() { _ = suite.cp.Stop() }()
	return m.Run()
}
