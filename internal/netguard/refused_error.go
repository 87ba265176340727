package netguard

import (
	"fmt"
	"net/netip"
)

// RefusedError is returned when a connection is refused because its destination
// address is in a forbidden range. Its message names the address, the range and
// the flag that allows it, because the person reading it (in a delivery's status)
// is often not the person who can change the operator's flags.
type RefusedError struct {
	// Address is the IP the dialer was about to connect to (unmapped).
	Address netip.Addr
	// Range is the forbidden range holding Address.
	Range netip.Prefix
	// RangeName says what kind of range it is: loopback, private, link-local, ...
	// or DenyListRangeName.
	RangeName string
	// Denied is true when Range is on the operator's deny list (--deny-cidr),
	// which --allow-cidr cannot override.
	Denied bool
}

// DenyListRangeName is the RangeName of a refusal by the operator's deny list.
const DenyListRangeName = "operator deny list"

func (e *RefusedError) Error() string {
	if e.Denied {
		return fmt.Sprintf("destination %s is in range %s of the operator deny list (--deny-cidr), which Hookpost always refuses; deliver to another address, or ask the operator's administrator to remove the range",
			e.Address, e.Range)
	}
	return fmt.Sprintf("destination %s is in the %s range %s, which Hookpost refuses by default; a cluster admin allows it for one namespace with the namespace annotation webhooks.hookpost.io/allow-cidrs=%s, or for every namespace by starting the operator with --allow-cidr=%s",
		e.Address, e.RangeName, e.Range, e.Range, e.Range)
}
