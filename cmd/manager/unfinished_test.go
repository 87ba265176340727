package main

import (
	"flag"
	"strings"
	"testing"
)

func parseCaps(t *testing.T, args []string, env map[string]string) (*capsOptions, error) {
	t.Helper()
	var o capsOptions
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &o, applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestUnfinishedCapsDefaultsEnvironmentAndRefusals(t *testing.T) {
	o, err := parseCaps(t, nil, nil)
	if err != nil || o.perSubscription != 10000 || o.total != 100000 || o.validate() != nil {
		t.Fatalf("defaults %+v (%v, %v), want 10000 and 100000, valid", o, err, o.validate())
	}
	o, err = parseCaps(t, []string{"--max-unfinished=500"}, map[string]string{
		"HOOKPOST_MAX_UNFINISHED_PER_SUBSCRIPTION": "50",
		"HOOKPOST_MAX_UNFINISHED":                  "7",
	})
	if err != nil || o.perSubscription != 50 || o.total != 500 {
		t.Fatalf("from the environment %+v (%v), want 50 and the command line's 500", o, err)
	}
	o, _ = parseCaps(t, []string{"--max-unfinished-per-subscription=0"}, nil)
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "--max-unfinished-per-subscription=0") || !strings.Contains(err.Error(), "at least 1") {
		t.Errorf("a cap of 0: %v, want an error naming the flag and the fix", err)
	}
}
