package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/netguard"
)

// TestCheckClassifiesEveryRange only classifies addresses; it never dials them.
func TestCheckClassifiesEveryRange(t *testing.T) {
	tests := []struct {
		addr      string
		wantRange string // "" means allowed
		wantName  string
	}{
		{"0.0.0.0", "0.0.0.0/8", "unspecified"},
		{"0.1.2.3", "0.0.0.0/8", "unspecified"},
		{"10.0.0.1", "10.0.0.0/8", "private"},
		{"10.255.255.255", "10.0.0.0/8", "private"},
		{"100.64.0.1", "100.64.0.0/10", "CGNAT"},
		{"100.127.255.254", "100.64.0.0/10", "CGNAT"},
		{"127.0.0.1", "127.0.0.0/8", "loopback"},
		{"127.8.9.10", "127.0.0.0/8", "loopback"},
		{"169.254.169.254", "169.254.0.0/16", "link-local"},
		{"169.254.0.1", "169.254.0.0/16", "link-local"},
		{"172.16.0.1", "172.16.0.0/12", "private"},
		{"172.31.255.255", "172.16.0.0/12", "private"},
		{"192.168.1.1", "192.168.0.0/16", "private"},
		{"192.0.0.1", "192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.0.170", "192.0.0.0/24", "IETF protocol assignments"},
		{"198.18.0.1", "198.18.0.0/15", "benchmarking"},
		{"198.19.255.255", "198.18.0.0/15", "benchmarking"},
		{"224.0.0.1", "224.0.0.0/4", "multicast"},
		{"239.255.255.250", "224.0.0.0/4", "multicast"},
		{"240.0.0.1", "240.0.0.0/4", "reserved"},
		{"255.255.255.254", "240.0.0.0/4", "reserved"},
		{"255.255.255.255", "255.255.255.255/32", "broadcast"},
		{"::", "::/128", "unspecified"},
		{"::1", "::1/128", "loopback"},
		{"::a00:1", "::/96", "IPv4-compatible"},
		{"::127.0.0.1", "::/96", "IPv4-compatible"},
		{"::169.254.169.254", "::/96", "IPv4-compatible"},
		{"2001::1", "2001::/32", "Teredo"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/32", "Teredo"},
		{"64:ff9b::a00:1", "64:ff9b::/96", "NAT64"},
		{"64:ff9b:1::1", "64:ff9b:1::/48", "NAT64"},
		{"2002:a00:1::1", "2002::/16", "6to4"},
		{"fc00::1", "fc00::/7", "unique-local"},
		{"fd12:3456::1", "fc00::/7", "unique-local"},
		{"fe80::1", "fe80::/10", "link-local"},
		{"fe80::1%eth0", "fe80::/10", "link-local"},
		{"febf::1", "fe80::/10", "link-local"},
		{"ff02::1", "ff00::/8", "multicast"},
		// IPv4-mapped IPv6 forms are unmapped before the check.
		{"::ffff:127.0.0.1", "127.0.0.0/8", "loopback"},
		{"::ffff:169.254.169.254", "169.254.0.0/16", "link-local"},
		{"::ffff:10.1.2.3", "10.0.0.0/8", "private"},
		{"::ffff:0.0.0.0", "0.0.0.0/8", "unspecified"},
		// Public neighbours of the forbidden ranges stay allowed.
		{"1.1.1.1", "", ""},
		{"8.8.8.8", "", ""},
		{"11.0.0.1", "", ""},
		{"100.63.255.255", "", ""},
		{"100.128.0.0", "", ""},
		{"128.0.0.1", "", ""},
		{"169.253.255.255", "", ""},
		{"172.15.255.255", "", ""},
		{"172.32.0.0", "", ""},
		{"192.167.255.255", "", ""},
		{"192.169.0.0", "", ""},
		{"191.255.255.255", "", ""},
		{"192.0.1.0", "", ""},
		{"198.17.255.255", "", ""},
		{"198.20.0.0", "", ""},
		{"223.255.255.255", "", ""},
		{"::1:0:0:1", "", ""},
		{"2001:1::1", "", ""},
		{"2001:4860:4860::8888", "", ""},
		{"::ffff:93.184.216.34", "", ""},
		{"2001:db8::1", "", ""},
		{"2606:4700:4700::1111", "", ""},
		{"fec0::1", "", ""},
	}
	g := netguard.New(nil)
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := g.Check(netip.MustParseAddr(tt.addr))
			if tt.wantRange == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want allowed", tt.addr, err)
				}
				return
			}
			var refused *netguard.RefusedError
			if !errors.As(err, &refused) {
				t.Fatalf("Check(%s) = %v, want *RefusedError", tt.addr, err)
			}
			if refused.Range != netip.MustParsePrefix(tt.wantRange) || refused.RangeName != tt.wantName {
				t.Errorf("Check(%s) refused as %s %s, want %s %s", tt.addr, refused.RangeName, refused.Range, tt.wantName, tt.wantRange)
			}
		})
	}
}

func TestAllowCIDROpensOnlyItsRange(t *testing.T) {
	allow, err := netguard.ParseAllowCIDRs([]string{"10.1.0.0/16", "192.168.7.7", "::ffff:172.16.0.0/112"})
	if err != nil {
		t.Fatal(err)
	}
	g := netguard.New(allow)
	for addr, wantAllowed := range map[string]bool{
		"10.1.2.3":          true,
		"::ffff:10.1.2.3":   true,
		"10.2.0.1":          false,
		"192.168.7.7":       true,
		"192.168.7.8":       false,
		"172.16.3.4":        true,
		"172.17.0.1":        false,
		"169.254.169.254":   false,
		"127.0.0.1":         false,
		"::1":               false,
		"2606:4700:4700::1": true,
	} {
		err := g.Check(netip.MustParseAddr(addr))
		if gotAllowed := err == nil; gotAllowed != wantAllowed {
			t.Errorf("Check(%s) = %v, want allowed=%v", addr, err, wantAllowed)
		}
	}
}

func TestParseAllowCIDRsNamesTheBadValue(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "not-a-cidr", "10.0.0/8", ""} {
		_, err := netguard.ParseAllowCIDRs([]string{"127.0.0.0/8", bad})
		if err == nil {
			t.Errorf("ParseAllowCIDRs(%q) succeeded, want error", bad)
			continue
		}
		if !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("error %q does not name the bad value %q", err, bad)
		}
	}
}

func TestDenyListWinsOverAllowAndDefaults(t *testing.T) {
	allow, err := netguard.ParseAllowCIDRs([]string{"10.0.0.0/8", "127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	deny, err := netguard.ParseDenyCIDRs([]string{"10.0.0.0/24", "93.184.216.34", "2606:4700::/32", "::ffff:127.0.0.2/128"})
	if err != nil {
		t.Fatal(err)
	}
	g := netguard.New(allow, netguard.WithDeny(deny))
	for _, tt := range []struct {
		addr      string
		wantRange string // "" means allowed
	}{
		{"10.0.0.7", "10.0.0.0/24"},           // inside an allowed range: the deny entry wins
		{"10.0.1.7", ""},                      // allowed range, outside the deny entry
		{"93.184.216.34", "93.184.216.34/32"}, // a public address can be denied too
		{"::ffff:93.184.216.34", "93.184.216.34/32"},
		{"93.184.216.35", ""},
		{"2606:4700::1111", "2606:4700::/32"},
		{"127.0.0.2", "127.0.0.2/32"}, // a mapped deny entry matches the IPv4 form
		{"127.0.0.1", ""},
	} {
		err := g.Check(netip.MustParseAddr(tt.addr))
		if tt.wantRange == "" {
			if err != nil {
				t.Errorf("Check(%s) = %v, want allowed", tt.addr, err)
			}
			continue
		}
		var refused *netguard.RefusedError
		if !errors.As(err, &refused) {
			t.Errorf("Check(%s) = %v, want *RefusedError", tt.addr, err)
			continue
		}
		if !refused.Denied || refused.RangeName != netguard.DenyListRangeName || refused.Range != netip.MustParsePrefix(tt.wantRange) {
			t.Errorf("Check(%s) refused as %q %s (denied=%v), want the operator deny list's %s", tt.addr, refused.RangeName, refused.Range, refused.Denied, tt.wantRange)
		}
	}
	// Without a deny entry for it, a default range still names its own kind.
	var refused *netguard.RefusedError
	if err := g.Check(netip.MustParseAddr("192.168.0.1")); !errors.As(err, &refused) || refused.Denied || refused.RangeName != "private" {
		t.Errorf("Check(192.168.0.1) = %v, want a refusal as private", err)
	}
}

func TestParseDenyCIDRsNamesTheFlagAndTheBadValue(t *testing.T) {
	_, err := netguard.ParseDenyCIDRs([]string{"10.0.0.0/8", "10.0.0.0/40"})
	if err == nil || !strings.Contains(err.Error(), `--deny-cidr value "10.0.0.0/40"`) {
		t.Fatalf("error = %v, want one naming --deny-cidr and the bad value", err)
	}
}

func TestDeniedErrorNamesTheDenyList(t *testing.T) {
	deny, _ := netguard.ParseDenyCIDRs([]string{"203.0.113.0/24"})
	err := netguard.New(nil, netguard.WithDeny(deny)).Check(netip.MustParseAddr("203.0.113.9"))
	want := "destination 203.0.113.9 is in range 203.0.113.0/24 of the operator deny list (--deny-cidr), which Hookpost always refuses; deliver to another address, or ask the operator's administrator to remove the range"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

func TestRefusedErrorTellsHowToAllow(t *testing.T) {
	err := netguard.New(nil).Check(netip.MustParseAddr("127.0.0.1"))
	want := "destination 127.0.0.1 is in the loopback range 127.0.0.0/8, which Hookpost refuses by default; a cluster admin allows it for one namespace with the namespace annotation webhooks.hookpost.io/allow-cidrs=127.0.0.0/8, or for every namespace by starting the operator with --allow-cidr=127.0.0.0/8"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

// loopbackServers starts an HTTP server on every loopback family this machine
// has: 127.0.0.1 always, ::1 when IPv6 is available.
func loopbackServers(t *testing.T) map[string]*httptest.Server {
	t.Helper()
	servers := map[string]*httptest.Server{}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, host := range []string{"127.0.0.1", "::1"} {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			if host == "127.0.0.1" {
				t.Fatal(err)
			}
			t.Logf("no %s on this machine, testing IPv4 loopback only: %v", host, err)
			continue
		}
		srv := httptest.NewUnstartedServer(h)
		srv.Listener = ln
		srv.Start()
		t.Cleanup(srv.Close)
		servers[host] = srv
	}
	return servers
}

func clientWith(g *netguard.Guard) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: g.DialContext}, Timeout: 10 * time.Second}
}

func TestDialRefusesLoopback(t *testing.T) {
	for host, srv := range loopbackServers(t) {
		t.Run(host, func(t *testing.T) {
			g := netguard.New(nil)

			_, err := g.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
			var refused *netguard.RefusedError
			if !errors.As(err, &refused) {
				t.Fatalf("dial error = %v, want *RefusedError", err)
			}
			if refused.RangeName != "loopback" || refused.Address != netip.MustParseAddr(host) {
				t.Errorf("refused %s as %s, want %s as loopback", refused.Address, refused.RangeName, host)
			}

			// Through an HTTP client the refusal survives the url.Error wrapping.
			resp, err := clientWith(g).Get(srv.URL)
			if err == nil {
				resp.Body.Close()
				t.Fatal("GET to loopback succeeded through the guard")
			}
			if !errors.As(err, &refused) {
				t.Fatalf("GET error = %v, want *RefusedError", err)
			}
		})
	}
}

// TestDialRefusesNameResolvingToLoopback shows the check is on the resolved
// address, not on the host name in the URL.
func TestDialRefusesNameResolvingToLoopback(t *testing.T) {
	srv := loopbackServers(t)["127.0.0.1"]
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	_, err := netguard.New(nil).DialContext(context.Background(), "tcp4", net.JoinHostPort("localhost", port))
	var refused *netguard.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("dial localhost error = %v, want *RefusedError", err)
	}
}

func TestDialAllowsLoopbackWithAllowCIDR(t *testing.T) {
	allow, err := netguard.ParseAllowCIDRs([]string{"127.0.0.0/8", "::1/128"})
	if err != nil {
		t.Fatal(err)
	}
	g := netguard.New(allow)
	for host, srv := range loopbackServers(t) {
		t.Run(host, func(t *testing.T) {
			resp, err := clientWith(g).Get(srv.URL)
			if err != nil {
				t.Fatalf("GET with --allow-cidr: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("status = %d, want 204", resp.StatusCode)
			}
		})
	}
}

// TestDialRefusesDeniedLoopbackAddress dials real sockets: with all of
// 127.0.0.0/8 allowed and 127.0.0.2 denied, a server on 127.0.0.2 is refused
// while one on 127.0.0.1 answers.
func TestDialRefusesDeniedLoopbackAddress(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	servers := map[string]*httptest.Server{}
	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(h)
		srv.Listener = ln
		srv.Start()
		t.Cleanup(srv.Close)
		servers[host] = srv
	}
	allow, _ := netguard.ParseAllowCIDRs([]string{"127.0.0.0/8"})
	deny, err := netguard.ParseDenyCIDRs([]string{"127.0.0.2/32"})
	if err != nil {
		t.Fatal(err)
	}
	client := clientWith(netguard.New(allow, netguard.WithDeny(deny)))

	resp, err := client.Get(servers["127.0.0.1"].URL)
	if err != nil {
		t.Fatalf("GET 127.0.0.1 (allowed, not denied): %v", err)
	}
	resp.Body.Close()

	resp, err = client.Get(servers["127.0.0.2"].URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET to the denied 127.0.0.2 succeeded")
	}
	var refused *netguard.RefusedError
	if !errors.As(err, &refused) || refused.RangeName != netguard.DenyListRangeName || refused.Address != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("GET 127.0.0.2 error = %v, want a refusal by the operator deny list", err)
	}
}

func TestControlRefusesUnixSockets(t *testing.T) {
	if err := netguard.New(nil).Control("unix", "/var/run/docker.sock", nil); err == nil {
		t.Fatal("Control allowed a unix socket")
	}
}
