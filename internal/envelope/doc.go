// Package envelope owns the payload formats Hookpost delivers (Envelope, Collection, CloudEvents in structured
// and binary mode) and the canonical JSON encoder every body goes through.
//
// Receivers written after our product documents verify the HMAC over JSON.stringify(req.body), that is,
// over JavaScript's re-serialisation of the body they parsed, not over the bytes on the wire. A body is
// therefore only verifiable if it already is what JSON.stringify would print, so this package never
// emits JSON that has not been through Canonical's rules.
package envelope
