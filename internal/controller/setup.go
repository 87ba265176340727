package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/ledger"
)

// Options are what the controllers need from the binary that runs them.
type Options struct {
	Clock  clock.PassiveClock
	Sender *delivery.Sender
	// Secrets reads signing Secrets; nil makes one. The binary shares one with ingest's first attempts.
	Secrets *Secrets
	// UserAgent is sent on every attempt.
	UserAgent string
	// MaxRetryAfter caps a receiver's Retry-After.
	MaxRetryAfter time.Duration
	// Ledger appends every attempt the delivery controller makes; nil keeps none (ledger.Discard).
	Ledger ledger.Recorder
	// DeliveryWorkers bounds deliveries reconciled at once.
	DeliveryWorkers int
	// TenantIsolation makes subscriptions report their namespace's tenant grant (TenantsGranted).
	TenantIsolation bool
	// ReplayLimits bound how often replays are sent (zero: the defaults).
	ReplayLimits ReplayLimits
	// Sealer checks the seal of the deliveries ingest created (required; ingest seals with the same key).
	Sealer *Sealer
	// Breakers holds the subscriptions' circuits, shared with ingest's first attempts; nil opens none.
	Breakers *delivery.Breakers
	// Pruned keeps the deliveries pruned beyond the history limits, for WebhookReplays to make again; nil when the
	// operator has no ledger (a WebhookReplay then selects objects only).
	Pruned ledger.PrunedStore
	// Sources re-reads the event sources for WebhookReplays with spec.source; nil when the operator reads none.
	Sources SourceReplayer
	// Watermarks tells ordered deliveries whether their source has acknowledged every event before them (the
	// binary's source.Watermarks, to which it adds its sources); nil treats every source as caught up.
	Watermarks Watermarks
}

// Setup registers the cache indexes and the controllers with mgr, as the operator runs them; tests that need
// the real operator in-process call it too.
func Setup(ctx context.Context, mgr ctrl.Manager, o Options) error {
	if err := setupIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("set up cache indexes: %w", err)
	}
	if o.Sealer == nil {
		return errors.New("options: a Sealer is required (LoadSealKey reads its key)")
	}
	if o.Ledger == nil {
		o.Ledger = ledger.Discard
	}
	secrets := o.Secrets
	if secrets == nil {
		secrets = NewSecrets(mgr.GetClient(), mgr.GetAPIReader())
	}
	if err := (&WebhookSubscriptionReconciler{
		Secrets:         secrets,
		Client:          mgr.GetClient(),
		Recorder:        FitNotes(mgr.GetEventRecorder("hookpost-subscription")),
		Clock:           o.Clock,
		TenantIsolation: o.TenantIsolation,
		Breakers:        o.Breakers,
		Ledger:          o.Ledger,
		Pruned:          o.Pruned,
		APIReader:       mgr.GetAPIReader(),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up subscription controller: %w", err)
	}
	if err := (&WebhookDeliveryReconciler{
		Secrets:                 secrets,
		Sealer:                  o.Sealer,
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                FitNotes(mgr.GetEventRecorder("hookpost-delivery")),
		Clock:                   o.Clock,
		Sender:                  o.Sender,
		UserAgent:               o.UserAgent,
		MaxRetryAfter:           o.MaxRetryAfter,
		MaxConcurrentReconciles: o.DeliveryWorkers,
		ReplayLimits:            o.ReplayLimits,
		Ledger:                  o.Ledger,
		Breakers:                o.Breakers,
		Watermarks:              o.Watermarks,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up delivery controller: %w", err)
	}
	if err := (&WebhookReplayReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        FitNotes(mgr.GetEventRecorder("hookpost-replay")),
		Clock:           o.Clock,
		Sealer:          o.Sealer,
		Pruned:          o.Pruned,
		Sources:         o.Sources,
		TenantIsolation: o.TenantIsolation,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up replay controller: %w", err)
	}
	return nil
}
