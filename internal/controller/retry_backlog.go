package controller

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// RetryBacklog counts the deliveries in phase Retrying as this replica's cache sees them, kept up to date by the
// cache's change notifications: a metrics scrape reads a number instead of walking every delivery, which with
// tens of thousands retained cost a full pass per scrape.
type RetryBacklog struct {
	mu sync.Mutex
	// retrying holds the UIDs of deliveries last seen Retrying; a set, not a counter, so a repeated or missed
	// notification cannot make the count drift.
	retrying map[types.UID]struct{}
}

// WatchRetryBacklog registers a RetryBacklog with the cache's WebhookDelivery informer. Call it before the
// manager starts; the count follows the cache from its first sync.
func WatchRetryBacklog(ctx context.Context, c cache.Informers) (*RetryBacklog, error) {
	inf, err := c.GetInformer(ctx, &hookpostv1.WebhookDelivery{})
	if err != nil {
		return nil, fmt.Errorf("get delivery informer: %w", err)
	}
	b := &RetryBacklog{retrying: map[types.UID]struct{}{}}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { b.observe(o, false) },
		UpdateFunc: func(_, o any) { b.observe(o, false) },
		DeleteFunc: func(o any) { b.observe(o, true) },
	}); err != nil {
		return nil, fmt.Errorf("watch deliveries for the retry backlog: %w", err)
	}
	return b, nil
}

// observe records a delivery's latest state.
func (b *RetryBacklog) observe(o any, deleted bool) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o, deleted = t.Obj, true
	}
	d, ok := o.(*hookpostv1.WebhookDelivery)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !deleted && d.Status.Phase == hookpostv1.DeliveryRetrying {
		b.retrying[d.UID] = struct{}{}
	} else {
		delete(b.retrying, d.UID)
	}
}

// Count is the number of deliveries in phase Retrying, for the hookpost_retry_backlog gauge.
func (b *RetryBacklog) Count() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return float64(len(b.retrying))
}
