package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"syscall"
)

// Guard refuses connections to forbidden addresses, except those inside the
// operator's allowed ranges, and to every address on the operator's deny list.
// A Guard is immutable and safe for concurrent use.
type Guard struct {
	allow  []netip.Prefix
	deny   []netip.Prefix
	dialer net.Dialer
}

// Option configures a Guard beyond its allowed ranges. New settings come as
// new Options, so existing callers of New keep compiling.
type Option func(*Guard)

// WithDeny adds the operator's deny list (--deny-cidr): ranges refused whatever
// else applies. A deny entry wins over an allowed range that overlaps it, so an
// operator can open 10.0.0.0/8 and still keep 10.0.0.0/24 (say, the nodes) shut.
func WithDeny(deny []netip.Prefix) Option {
	return func(g *Guard) {
		for _, p := range deny {
			g.deny = append(g.deny, normalizePrefix(p))
		}
	}
}

// New returns a Guard that refuses the default forbidden ranges except for
// addresses inside allow.
func New(allow []netip.Prefix, opts ...Option) *Guard {
	g := &Guard{}
	for _, p := range allow {
		g.allow = append(g.allow, normalizePrefix(p))
	}
	for _, o := range opts {
		o(g)
	}
	g.dialer.Control = g.Control
	return g
}

// ParseAllowCIDRs parses the operator's --allow-cidr values. A bare address is
// accepted as a single-address range, because "allow 10.0.0.7" is what people
// mean when they type it.
func ParseAllowCIDRs(values []string) ([]netip.Prefix, error) {
	return parseCIDRs("--allow-cidr", values)
}

// ParseDenyCIDRs parses the operator's --deny-cidr values, as ParseAllowCIDRs
// does --allow-cidr's.
func ParseDenyCIDRs(values []string) ([]netip.Prefix, error) {
	return parseCIDRs("--deny-cidr", values)
}

func parseCIDRs(flag string, values []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(values))
	for _, v := range values {
		p, err := ParseCIDR(v)
		if err != nil {
			return nil, fmt.Errorf("invalid %s value %q (want a CIDR such as 10.0.0.0/8 or an IP address): %w", flag, v, err)
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

// Check returns a *RefusedError when addr is on the deny list, or in a
// forbidden range that no allowed range covers, and nil otherwise.
func (g *Guard) Check(addr netip.Addr) error {
	addr = normalize(addr)
	// The deny list comes first: it is the operator's last word, and no allowed
	// range reopens what it closes.
	for _, p := range g.deny {
		if p.Contains(addr) {
			return &RefusedError{Address: addr, Range: p, RangeName: DenyListRangeName, Denied: true}
		}
	}
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
