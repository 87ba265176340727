package main

import (
	"flag"
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
