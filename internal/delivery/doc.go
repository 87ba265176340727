// Package delivery owns one webhook attempt: it builds the exact HTTP request
// (envelope, signature and Hookpost's headers), sends it through the SSRF guard
// with bounded concurrency, and classifies the outcome as succeeded, retry,
// permanent failure or gone. It takes and returns plain values; the delivery
// controller translates WebhookDelivery objects to and from them.
package delivery
