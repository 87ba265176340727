package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func parse(t *testing.T, args []string, env map[string]string) (*options, error) {
	t.Helper()
	var o options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	bindFlags(fs, &o, &zap.Options{})
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &o, applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestEnvironmentSetsFlagsTheCommandLineDoesNot(t *testing.T) {
	o, err := parse(t, []string{"--nats-url=nats://flag:4222"}, map[string]string{
		"HOOKPOST_POSTGRES_DSN":          "postgres://db/outbox",
		"HOOKPOST_POSTGRES_MIGRATE":      "true",
		"HOOKPOST_POSTGRES_RETENTION":    "168h",
		"HOOKPOST_NATS_URL":              "nats://env:4222",
		"HOOKPOST_NATS_CREATE_STREAM":    "1",
		"HOOKPOST_ALLOW_CIDRS":           "10.0.0.0/8, 192.168.1.0/24",
		"HOOKPOST_DENY_CIDRS":            "10.0.0.0/24,169.254.0.0/16",
		"HOOKPOST_MAX_ATTEMPTS_PER_HOST": "3",
		"HOOKPOST_KUBE_API_QPS":          "50.5",
		"HOOKPOST_LEADER_ELECT":          "true",
		"HOOKPOST_WATCH_NAMESPACES":      "shop, billing",
	})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case o.sources.postgresDSN != "postgres://db/outbox" || !o.sources.postgresMigrate || o.sources.postgresRetention != 168*time.Hour:
		t.Errorf("postgres settings %+v", o.sources)
	case o.sources.natsURL != "nats://flag:4222":
		t.Errorf("nats url %q: the command line must win over the environment", o.sources.natsURL)
	case !o.sources.natsCreateStream:
		t.Error("HOOKPOST_NATS_CREATE_STREAM=1 ignored")
	case o.allowCIDRs.String() != "10.0.0.0/8,192.168.1.0/24":
		t.Errorf("allow cidrs %q", o.allowCIDRs.String())
	case o.denyCIDRs.String() != "10.0.0.0/24,169.254.0.0/16":
		t.Errorf("deny cidrs %q", o.denyCIDRs.String())
	case o.maxPerHost != 3 || o.kubeQPS != 50.5 || !o.leaderElect:
		t.Errorf("options %+v", o)
	case o.watchNamespaces.String() != "shop,billing":
		t.Errorf("watch namespaces %q, want shop,billing", o.watchNamespaces.String())
	}
}

func TestEnvironmentValueAFlagRefusesIsAnError(t *testing.T) {
	_, err := parse(t, nil, map[string]string{"HOOKPOST_POSTGRES_RETENTION": "7d", "HOOKPOST_NATS_CREATE_STREAM": "yes"})
	if err == nil || !strings.Contains(err.Error(), `HOOKPOST_POSTGRES_RETENTION="7d"`) || !strings.Contains(err.Error(), "HOOKPOST_NATS_CREATE_STREAM") {
		t.Fatalf("error %v, want one naming both variables", err)
	}
}

func TestEveryFlagHasItsVariableInItsUsage(t *testing.T) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	bindFlags(fs, &options{}, &zap.Options{})
	fs.VisitAll(func(f *flag.Flag) {
		if name := envName(f.Name); name != "" && !strings.HasPrefix(f.Name, "zap-") && !strings.Contains(f.Usage, name) {
			t.Errorf("--%s usage does not name %s", f.Name, name)
		}
	})
}

func TestReplayLimitsDefaultsEnvironmentAndRefusals(t *testing.T) {
	o, err := parse(t, nil, nil)
	if err != nil || o.validateReplay() != nil {
		t.Fatalf("defaults refused: %v, %v", err, o.validateReplay())
	}
	if o.replay.Interval != 10*time.Second || o.replay.PerMinute != 10 || o.replay.Burst != 20 {
		t.Errorf("default replay limits %+v, want 10s, 10/min, burst 20", o.replay)
	}
	o, err = parse(t, []string{"--replay-burst=5"}, map[string]string{"HOOKPOST_REPLAY_INTERVAL": "30s", "HOOKPOST_REPLAY_RATE": "2.5"})
	if err != nil || o.replay.Interval != 30*time.Second || o.replay.PerMinute != 2.5 || o.replay.Burst != 5 {
		t.Errorf("replay limits %+v (%v), want 30s, 2.5/min, burst 5", o.replay, err)
	}
	for _, args := range [][]string{{"--replay-burst=0"}, {"--replay-rate=0"}, {"--replay-interval=0s"}} {
		o, _ := parse(t, args, nil)
		if err := o.validateReplay(); err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("%v: error %v, want one saying the limits must be positive", args, err)
		}
	}
}

func TestSealSecretFlag(t *testing.T) {
	serviceAccountNamespaceFile = filepath.Join(t.TempDir(), "namespace") // outside a cluster
	for _, tc := range []struct {
		args     []string
		inPod    bool
		wantNS   string
		wantName string
	}{
		{[]string{"--seal-secret=ops/seal"}, true, "ops", "seal"},
		{nil, true, "hookpost-system", "hookpost-delivery-seal"},
		{[]string{"--leader-election-namespace=ops"}, false, "ops", "hookpost-delivery-seal"},
		{nil, false, "default", "hookpost-delivery-seal"},
	} {
		_ = os.Remove(serviceAccountNamespaceFile)
		if tc.inPod {
			if err := os.WriteFile(serviceAccountNamespaceFile, []byte("hookpost-system\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		o, _ := parse(t, tc.args, nil)
		if ns, name, err := o.sealSecretName(); err != nil || ns != tc.wantNS || name != tc.wantName {
			t.Errorf("%v (in a pod: %v): %s/%s, %v; want %s/%s", tc.args, tc.inPod, ns, name, err, tc.wantNS, tc.wantName)
		}
	}
	o, _ := parse(t, []string{"--seal-secret=seal"}, nil)
	if _, _, err := o.sealSecretName(); err == nil || !strings.Contains(err.Error(), "want namespace/name") {
		t.Errorf("--seal-secret=seal: error %v, want one asking for namespace/name", err)
	}
}
