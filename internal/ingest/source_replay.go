package ingest

import (
	"context"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/source"
)

// SourceReplay re-reads the operator's sources for WebhookReplays with spec.source (controller.SourceReplayer):
// each event re-read is matched as Ingester.handle matches a new one (the Index, tenant isolation, the tenant and
// collection filters and the content filter), against the replay's namespace only, so a replay in one namespace
// never reaches another's subscriptions.
type SourceReplay struct {
	reader          client.Reader
	sealer          *controller.Sealer
	tenantIsolation bool

	mu      sync.Mutex
	sources map[hookpostv1.ReplaySourceKind]source.Rereader
}

var _ controller.SourceReplayer = (*SourceReplay)(nil)

// NewSourceReplay returns a SourceReplay matching against the subscriptions reader (the manager's cache) holds and
// sealing what it builds with sealer; tenantIsolation is the operator's --tenant-isolation. Add gives it sources.
func NewSourceReplay(reader client.Reader, sealer *controller.Sealer, tenantIsolation bool) *SourceReplay {
	return &SourceReplay{reader: reader, sealer: sealer, tenantIsolation: tenantIsolation, sources: map[hookpostv1.ReplaySourceKind]source.Rereader{}}
}

// Add makes src the source WebhookReplays re-read as kind.
func (s *SourceReplay) Add(kind hookpostv1.ReplaySourceKind, src source.Rereader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources[kind] = src
}

// Replay implements controller.SourceReplayer.
func (s *SourceReplay) Replay(ctx context.Context, req controller.SourceReplayRequest) ([]*hookpostv1.WebhookDelivery, error) {
	s.mu.Lock()
	src := s.sources[req.Kind]
	s.mu.Unlock()
	if src == nil {
		return nil, fmt.Errorf("spec.source.kind %s: %w", req.Kind, controller.ErrSourceNotConfigured)
	}
	idx, err := s.index(ctx, req.Namespace, req.Subscription)
	if err != nil {
		return nil, err
	}
	var (
		out     []*hookpostv1.WebhookDelivery
		matches []*Subscription
	)
	err = src.Reread(ctx, req.Since, req.Until, func(ev source.Event) bool {
		matches = idx.Match(Event{Type: ev.Type, TenantID: ev.TenantID, Collection: ev.Collection, OccurredAt: ev.OccurredAt}, matches[:0])
		matches = contentFilter(ctx, &ev, matches)
		for _, sub := range matches {
			if d := NewDelivery(ctx, sub, &ev, s.sealer); req.Keep == nil || req.Keep(d) {
				out = append(out, d)
			}
			if req.Limit > 0 && len(out) >= req.Limit {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("re-read %s: %w", req.Kind, err)
	}
	return out, nil
}

// index is the matching index over namespace's subscriptions (only the one named subscription, when set).
func (s *SourceReplay) index(ctx context.Context, namespace, subscription string) (*Index, error) {
	list := &hookpostv1.WebhookSubscriptionList{}
	if err := s.reader.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	items := list.Items
	if subscription != "" {
		items = items[:0]
		for _, sub := range list.Items {
			if sub.Name == subscription {
				items = append(items, sub)
			}
		}
	}
	var grants map[string]*controller.TenantGrant
	if s.tenantIsolation {
		ns, err := controller.ReadNamespace(ctx, s.reader, namespace)
		if err != nil {
			return nil, err
		}
		grants = map[string]*controller.TenantGrant{}
		if ns != nil {
			g := controller.TenantGrantOf(ns)
			grants[namespace] = &g
		}
	}
	subs, _, _ := forMatching(items, grants, nil, nil)
	return NewIndex(subs), nil
}
