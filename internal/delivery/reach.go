package delivery

import (
	"net/netip"
	"slices"
	"strings"
)

// Reach is what one subscription's attempts may reach beyond the operator's SSRF guard, and what the record keeps
// of answers from internal addresses: set per namespace by a cluster admin (the controller package reads it from
// the namespace's annotations).
type Reach struct {
	// AllowCIDRs are internal ranges allowed to this namespace only, on top of the operator's --allow-cidr.
	AllowCIDRs []netip.Prefix
	// ShowInternalResponses keeps the body of an answer from an internal address (loopback, private, link-local,
	// ...) in the record. Without it the body is withheld: a subscriber who may reach an internal service must
	// not read what it says through status.
	ShowInternalResponses bool
	// Ignored describes entries of the namespace's settings that could not be used, for the refusal message.
	Ignored string
}

// key identifies the allowed ranges, so attempts with the same ranges share one connection pool and attempts with
// different ones never share a connection.
func (r Reach) key() string {
	if len(r.AllowCIDRs) == 0 {
		return ""
	}
	parts := make([]string, len(r.AllowCIDRs))
	for i, p := range r.AllowCIDRs {
		parts[i] = p.String()
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), ",")
}

// withheldBody replaces the body of an answer from an internal address when the namespace did not ask to see it.
const withheldBody = "(response body withheld: the receiver is at an internal address; a cluster admin shows such bodies for this namespace with its annotation webhooks.hookpost.io/show-internal-responses=true)"
