// Package netguard owns Hookpost's SSRF guard: the dialer that refuses to connect
// webhook deliveries to loopback, private, link-local, CGNAT, unique-local,
// multicast, reserved and other special-purpose addresses unless the operator
// allows a range with --allow-cidr, and to every range on the operator's deny
// list (--deny-cidr), which no allowed range overrides.
//
// The check runs in net.Dialer's Control hook, on the IP the socket is about to
// connect to, rather than on the URL's host name. Checking the name (or a DNS
// answer fetched beforehand) would let DNS rebinding slip through: the name can
// resolve to a public address for the check and to 169.254.169.254 for the dial.
package netguard
