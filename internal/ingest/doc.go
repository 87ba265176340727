// Package ingest turns events from a source into WebhookDeliveries: it matches each event against the
// subscriptions in the informer cache, through an index, and creates one delivery per match with a name derived
// from (subscription, event id), so an event handed over twice never makes a second delivery. A batch is
// acknowledged to its source only after every delivery it needs exists. Caps keeps the unfinished deliveries
// within their caps: past one, a match is parked in the ledger's database (the Drain makes its delivery, in
// order of arrival, once there is room) or, without a ledger, refused.
package ingest
