package netguard

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ParseCIDR parses one allowed range: a CIDR, or a bare address as a single-address range, because "allow
// 10.0.0.7" is what people mean when they type it. The range is normalized (masked, IPv4-mapped unmapped).
func ParseCIDR(value string) (netip.Prefix, error) {
	s := strings.TrimSpace(value)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return normalizePrefix(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR range such as 10.0.0.0/8", s)
	}
	return normalizePrefix(netip.PrefixFrom(a, a.BitLen())), nil
}

// Allowing returns a Guard that also allows extra: the ranges one namespace was allowed on top of the operator's.
// g itself is unchanged, so connections dialed for other namespaces stay refused.
func (g *Guard) Allowing(extra []netip.Prefix) *Guard {
	if len(extra) == 0 {
		return g
	}
	c := *g
	c.allow = slices.Clone(g.allow)
	for _, p := range extra {
		c.allow = append(c.allow, normalizePrefix(p))
	}
	ng := &c
	ng.dialer.Control = ng.Control
	return ng
}

// Internal reports whether addr is in a range refused by default (loopback, private, link-local, ...), allowed
// or not: an answer from such an address may tell a subscriber what an internal service says about itself.
func Internal(addr netip.Addr) bool {
	_, forbidden := classify(normalize(addr))
	return forbidden
}
