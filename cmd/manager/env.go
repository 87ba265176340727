package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// applyEnv sets every flag not given on the command line from its environment variable (see envName), so the
// Helm chart can pass settings, and Secrets, as env vars. A value the flag refuses is an error naming the
// variable: a typo in the chart's values must not become a silent default.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if name == "" || given[f.Name] {
			return
		}
		v, ok := lookup(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	return errors.Join(errs...)
}

// envName is the environment variable for a flag: HOOKPOST_ and the flag's name in upper case with underscores
// ("" for flags that have none).
func envName(flagName string) string {
	switch flagName {
	case "allow-cidr":
		return "HOOKPOST_ALLOW_CIDRS" // a comma-separated list
	case "deny-cidr":
		return "HOOKPOST_DENY_CIDRS" // a comma-separated list
	case "kubeconfig", "postgres-print-ddl", "ledger-print-ddl":
		return "" // client-go reads KUBECONFIG itself; printing the DDL is a command, not a setting
	}
	return "HOOKPOST_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
