package netguard

import "net/netip"

// forbiddenRange is one address range refused by default, with the name used in
// RefusedError so a user can tell why their destination was refused.
type forbiddenRange struct {
	prefix netip.Prefix
	name   string
}

// forbiddenRanges are refused unless allowed. IPv4-mapped IPv6 addresses
// (::ffff:127.0.0.1) are unmapped before the check, so only native forms appear.
var forbiddenRanges = []forbiddenRange{
	// "This network": the kernel treats 0.0.0.0 as the local host.
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	// Carrier-grade NAT space is used for pod and service networks by several
	// Kubernetes distributions, so it is as internal as RFC 1918 space.
	{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	// Includes 169.254.169.254, the cloud metadata service that hands out
	// node credentials: the classic SSRF target.
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	// IETF protocol assignments: special-purpose addresses (DS-Lite, NAT64 discovery, TURN anycast) that
	// answer on the operator's side of the network, never a public receiver.
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	// Benchmarking space is routed internally by labs and some clouds, never on the Internet.
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	// The limited broadcast address lies inside 240.0.0.0/4; it is named on its own (and listed first) because
	// "broadcast" says more than "reserved" to whoever reads the refusal.
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	// Deprecated IPv4-compatible IPv6 (::10.0.0.1): some stacks still route it to the IPv4 address inside. Listed
	// after ::/128 and ::1/128, which it contains, so those keep their own names.
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	// These IPv6 ranges carry an IPv4 address inside: NAT64 (64:ff9b::a00:1 reaches 10.0.0.1 through a DNS64
	// gateway) and 6to4. Refusing them whole keeps private IPv4 space from being reached by the back door.
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	// Teredo carries the client's IPv4 address (obfuscated) and its server's in the address itself.
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("fc00::/7"), "unique-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// classify returns the forbidden range holding addr, if any. addr must already
// be unmapped and zone-free (see normalize).
func classify(addr netip.Addr) (forbiddenRange, bool) {
	for _, r := range forbiddenRanges {
		if r.prefix.Contains(addr) {
			return r, true
		}
	}
	return forbiddenRange{}, false
}

// normalize puts an address in the form the ranges are written in. Unmapping
// stops ::ffff:127.0.0.1 from passing as an IPv6 address; dropping the zone
// matters because netip.Prefix.Contains never matches an address with a zone,
// so fe80::1%eth0 would otherwise escape the link-local range.
func normalize(addr netip.Addr) netip.Addr {
	return addr.Unmap().WithZone("")
}
