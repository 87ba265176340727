package delivery

import "net/http"

// Request is the exact request an attempt makes. It is a plain value, not an
// *http.Request, so `kubectl hookpost inspect` can show precisely what a receiver
// will get without sending it.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// Namespace is the subscription's namespace: attempts in flight are bounded per namespace. It is not sent.
	Namespace string
	// Reach is where the request may go beyond the SSRF guard; it is not sent.
	Reach Reach
	// TLS is the client certificate and CA bundle the connection uses; it is not sent.
	TLS ClientTLS
}
