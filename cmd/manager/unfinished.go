package main

import (
	"flag"
	"fmt"

	"github.com/hookpost/hookpost/internal/ingest"
)

// capsOptions are the caps on unfinished WebhookDeliveries.
type capsOptions struct {
	perSubscription, total int
}

func (o *capsOptions) bind(fs *flag.FlagSet) {
	fs.IntVar(&o.perSubscription, "max-unfinished-per-subscription", ingest.DefaultMaxUnfinishedPerSubscription, "Most unfinished (Pending or Retrying) WebhookDeliveries per subscription; past it a match is parked in the ledger's database until there is room, or refused without a ledger. Env HOOKPOST_MAX_UNFINISHED_PER_SUBSCRIPTION.")
	fs.IntVar(&o.total, "max-unfinished", ingest.DefaultMaxUnfinished, "Most unfinished WebhookDeliveries in the cluster (what etcd holds of them); past it matches are parked, or refused without a ledger. Env HOOKPOST_MAX_UNFINISHED.")
}

// validate refuses caps that would stop every delivery.
func (o *capsOptions) validate() error {
	if o.perSubscription < 1 || o.total < 1 {
		return fmt.Errorf("--max-unfinished-per-subscription=%d, --max-unfinished=%d: each must be at least 1 (the defaults are %d and %d)",
			o.perSubscription, o.total, ingest.DefaultMaxUnfinishedPerSubscription, ingest.DefaultMaxUnfinished)
	}
	return nil
}
