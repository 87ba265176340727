// Package signing owns how Hookpost proves a webhook came from it: signing and verifying bodies under
// every supported scheme (a hex HMAC-SHA256 header, Standard Webhooks), and generating and decoding
// the secrets those schemes use.
//
// It signs exactly the bytes it is given. Receivers that verify over JSON.stringify(req.body) need
// those bytes to be canonical, which is the envelope package's job, not this one's.
package signing
