package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/backoff"
)

// Waits between tries of a dependency that is down at start: the first after a second, doubling to 15 s.
const (
	firstDependencyWait = time.Second
	maxDependencyWait   = 15 * time.Second
)

// waitFor runs try until it succeeds, returns an error retryable does not accept, or ctx ends. A dependency (the
// Kubernetes API server, PostgreSQL, NATS) that is down when the operator starts is waited for, each failure
// logged, rather than made a reason to exit: exiting would only put the pod in a crash loop that restarts it
// more slowly each time, while waiting starts work the moment the dependency answers.
func waitFor(ctx context.Context, what string, retryable func(error) bool, try func(context.Context) error) error {
	log := ctrl.Log.WithName("setup")
	for failures := 1; ; failures++ {
		err := try(ctx)
		if err == nil {
			if failures > 1 {
				log.Info("Dependency is up", "dependency", what, "tries", failures)
			}
			return nil
		}
		if !retryable(err) {
			return err
		}
		wait := backoff.Exponential(failures, firstDependencyWait, maxDependencyWait)
		log.Info("Waiting for a dependency that does not answer", "dependency", what, "error", err.Error(), "retryIn", wait.String())
		if backoff.Sleep(ctx, wait) != nil {
			return fmt.Errorf("%s: gave up at shutdown: %w", what, err)
		}
	}
}

// always retries every error: discovery fails only while the API server cannot be reached or is starting.
func always(error) bool { return true }

// unreachable reports errors that mean a PostgreSQL or NATS server could not be reached, as opposed to a
// configuration the server refuses (a bad password, a missing permission), which waiting would not fix.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		var pgErr *pgconn.PgError
		return !errors.As(err, &pgErr) // a server that answered with an error is up, and means it
	}
	return errors.Is(err, nats.ErrNoServers)
}

// apiServerAnswers asks the API server its version, which every identity may, and whether it serves Hookpost's
// kinds: the manager cannot start without their REST mappings, and right after an API server (re)starts, or
// while an install applies the CRDs after the operator, they may not be served yet.
func apiServerAnswers(cfg *rest.Config) func(context.Context) error {
	return func(context.Context) error {
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			return err
		}
		if _, err = dc.ServerVersion(); err != nil {
			return err
		}
		return servesKinds(dc)
	}
}

// servesKinds returns an error naming the first of Hookpost's resources the API server does not serve.
func servesKinds(dc discovery.DiscoveryInterface) error {
	gv := hookpostv1.GroupVersion.String()
	list, err := dc.ServerResourcesForGroupVersion(gv)
	if err != nil {
		return fmt.Errorf("%s not served (are the CRDs installed? the Helm chart installs them, or `kubectl apply --server-side -f charts/hookpost/crds/`): %w", gv, err)
	}
	served := map[string]bool{}
	for _, r := range list.APIResources {
		served[r.Name] = true
	}
	for _, name := range []string{"webhooksubscriptions", "webhookdeliveries", "webhookreplays"} {
		if !served[name] {
			return fmt.Errorf("%s.%s not served yet (are the CRDs installed?)", name, hookpostv1.GroupVersion.Group)
		}
	}
	return nil
}
