// Package ingest turns events from a source into WebhookDeliveries: it matches each event against the
// subscriptions in the informer cache, through an index, and creates one delivery per match with a name derived
// from (subscription, event id), so an event handed over twice never makes a second delivery. A batch is
// acknowledged to its source only after every delivery it needs exists.
package ingest
