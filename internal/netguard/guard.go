package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"syscall"
)

// Guard refuses connections to forbidden addresses, except those inside the
// operator's allowed ranges. A Guard is immutable and safe for concurrent use.
type Guard struct {
	allow  []netip.Prefix
	dialer net.Dialer
}

// New returns a Guard that refuses the default forbidden ranges except for
// addresses inside allow.
func New(allow []netip.Prefix) *Guard {
	g := &Guard{}
	for _, p := range allow {
		g.allow = append(g.allow, normalizePrefix(p))
	}
	g.dialer.Control = g.Control
	return g
}

// ParseAllowCIDRs parses the operator's --allow-cidr values. A bare address is
// accepted as a single-address range, because "allow 10.0.0.7" is what people
// mean when they type it.
func ParseAllowCIDRs(values []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(values))
	for _, v := range values {
		p, err := ParseCIDR(v)
		if err != nil {
			return nil, fmt.Errorf("invalid --allow-cidr value %q: %w", v, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// normalizePrefix masks the prefix and turns an IPv4-mapped IPv6 prefix
// (::ffff:10.0.0.0/104) into its IPv4 form, since addresses are unmapped before
// they are compared with it.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr().WithZone("")
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return netip.PrefixFrom(a, p.Bits()).Masked()
}

// Check returns a *RefusedError when addr is in a forbidden range that no
// allowed range covers, and nil otherwise.
func (g *Guard) Check(addr netip.Addr) error {
	addr = normalize(addr)
	r, forbidden := classify(addr)
	if !forbidden {
		return nil
	}
	for _, p := range g.allow {
		if p.Contains(addr) {
			return nil
		}
	}
	return &RefusedError{Address: addr, Range: r.prefix, RangeName: r.name}
}

// Control is a net.Dialer.Control function. The dialer calls it after resolving
// the name and creating the socket, just before connecting, once for every
// address it tries, so the check is on the address actually connected to.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		// Unix sockets and raw IP are never webhook destinations.
		return fmt.Errorf("network %q is not allowed for webhook deliveries", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Control always receives a resolved ip:port; anything else means we
		// cannot tell where the connection goes, so refuse it.
		return fmt.Errorf("cannot check destination %q: %w", address, err)
	}
	return g.Check(ap.Addr())
}

// DialContext dials with a net.Dialer whose Control is g.Control. It has the
// signature of http.Transport.DialContext.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return g.dialer.DialContext(ctx, network, address)
}
