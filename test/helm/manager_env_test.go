package helm

import (
	"os/exec"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/hookpost/hookpost/test/harness"
)

// TestManagerAcceptsTheChartsEnvironment runs the real manager binary with the literal env vars the chart renders
// for its values (with every source and setting on) and its flags. The manager parses its environment strictly,
// so a value the chart writes in a form the manager refuses fails here, not in a user's cluster.
// --postgres-print-ddl makes it exit right after parsing.
func TestManagerAcceptsTheChartsEnvironment(t *testing.T) {
	binary, err := harness.BuildOperator(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	objs := renderChart(t, "hookpost-system",
		"--set", "postgres.enabled=true", "--set", "postgres.dsnSecret.name=outbox-dsn",
		"--set", "nats.enabled=true", "--set", "nats.url=nats://nats:4222",
		"--set", "allowCIDRs={10.0.0.0/8,192.168.0.0/16}", "--set", "denyCIDRs={10.0.0.0/24,fd00::/8}",
		"--set", "rbac.scope=namespaced", "--set", "watchNamespaces={shop,billing}")
	d := convert[appsv1.Deployment](t, find(t, objs, "Deployment"))
	c := d.Spec.Template.Spec.Containers[0]
	env := []string{"PATH=/usr/bin:/bin"}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	cmd := exec.Command(binary, append(append([]string{}, c.Args...), "--postgres-print-ddl")...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CREATE TABLE IF NOT EXISTS") {
		t.Fatalf("manager refused the chart's settings (env %v, args %v): %v\n%s", env, c.Args, err, out)
	}
}
