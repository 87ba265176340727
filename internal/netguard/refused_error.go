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
	RangeName string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("destination %s is in the %s range %s, which Hookpost refuses by default; a cluster admin allows it for one namespace with the namespace annotation webhooks.hookpost.io/allow-cidrs=%s, or for every namespace by starting the operator with --allow-cidr=%s",
		e.Address, e.RangeName, e.Range, e.Range, e.Range)
}
