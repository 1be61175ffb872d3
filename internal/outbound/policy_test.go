package outbound

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// policyCases lists addresses with the reason the policy refuses them ("" = public).
var policyCases = []struct {
	addr   string
	reason string
}{
	// loopback
	{"127.0.0.1", reasonLoopback},
	{"127.255.255.254", reasonLoopback},
	{"::1", reasonLoopback},
	// RFC 1918 and boundaries
	{"10.0.0.0", reasonPrivate},
	{"10.0.0.5", reasonPrivate},
	{"10.255.255.255", reasonPrivate},
	{"9.255.255.255", ""},
	{"11.0.0.0", ""},
	{"172.16.0.1", reasonPrivate},
	{"172.31.255.255", reasonPrivate},
	{"172.15.255.255", ""},
	{"172.32.0.0", ""},
	{"192.168.0.1", reasonPrivate},
	{"192.168.255.255", reasonPrivate},
	{"192.169.0.0", ""},
	{"fc00::1", reasonPrivate},
	{"fd12:3456:789a::1", reasonPrivate},
	{"fec0::1", reasonPrivate},
	{"64:ff9b:1::1", reasonPrivate},
	// link-local
	{"169.254.0.1", reasonLinkLocal},
	{"169.254.169.254", reasonMetadata},
	{"169.253.255.255", ""},
	{"fe80::1", reasonLinkLocal},
	{"febf:ffff::1", reasonLinkLocal},
	// CGNAT
	{"100.64.0.1", reasonCGNAT},
	{"100.127.255.255", reasonCGNAT},
	{"100.63.255.255", ""},
	{"100.128.0.0", ""},
	// unspecified
	{"0.0.0.0", reasonUnspecified},
	{"0.1.2.3", reasonUnspecified},
	{"::", reasonUnspecified},
	// multicast and broadcast
	{"224.0.0.1", reasonMulticast},
	{"239.255.255.255", reasonMulticast},
	{"ff02::1", reasonMulticast},
	{"ff0e::1", reasonMulticast},
	{"255.255.255.255", reasonBroadcast},
	// reserved, benchmarking, documentation
	{"240.0.0.1", reasonReserved},
	{"255.255.255.254", reasonReserved},
	{"192.0.0.8", reasonReserved},
	{"192.88.99.1", reasonReserved},
	{"198.18.0.1", reasonBenchmark},
	{"198.19.255.255", reasonBenchmark},
	{"198.17.255.255", ""},
	{"198.20.0.0", ""},
	{"192.0.2.1", reasonDocs},
	{"198.51.100.1", reasonDocs},
	{"203.0.113.1", reasonDocs},
	{"2001:db8::1", reasonDocs},
	{"3fff::1", reasonDocs},
	{"100::1", reasonReserved},
	{"2001::1", reasonTeredo},
	{"2001:10::1", reasonReserved},
	{"4000::1", reasonReserved},
	// IPv4-mapped: decided as the IPv4 address
	{"::ffff:127.0.0.1", reasonLoopback},
	{"::ffff:7f00:1", reasonLoopback},
	{"::ffff:10.0.0.5", reasonPrivate},
	{"::ffff:169.254.169.254", reasonMetadata},
	{"::ffff:0.0.0.0", reasonUnspecified},
	{"::ffff:8.8.8.8", ""},
	// IPv4-compatible (deprecated): refused whatever they embed
	{"::127.0.0.1", "an IPv4-compatible IPv6 address embedding 127.0.0.1, " + reasonLoopback},
	{"::10.0.0.5", "an IPv4-compatible IPv6 address embedding 10.0.0.5, " + reasonPrivate},
	{"::8.8.8.8", reasonCompat},
	// NAT64 and 6to4: refused when the embedded IPv4 address is
	{"64:ff9b::127.0.0.1", "a NAT64 address embedding 127.0.0.1, " + reasonLoopback},
	{"64:ff9b::a9fe:a9fe", "a NAT64 address embedding 169.254.169.254, " + reasonMetadata},
	{"64:ff9b::8.8.8.8", ""},
	{"2002:7f00:1::1", "a 6to4 address embedding 127.0.0.1, " + reasonLoopback},
	{"2002:c0a8:101::", "a 6to4 address embedding 192.168.1.1, " + reasonPrivate},
	{"2002:808:808::1", ""},
	// public
	{"8.8.8.8", ""},
	{"1.1.1.1", ""},
	{"93.184.216.34", ""},
	{"223.255.255.255", ""},
	{"2606:4700:4700::1111", ""},
	{"2001:4860:4860::8888", ""},
}

func TestDecideWithoutAllowList(t *testing.T) {
	g := New(nil)
	for _, c := range policyCases {
		allowed, reason := g.Decide(netip.MustParseAddr(c.addr))
		if allowed != (c.reason == "") || reason != c.reason {
			t.Errorf("Decide(%s) = %v, %q; want %v, %q", c.addr, allowed, reason, c.reason == "", c.reason)
		}
	}
}

func TestDecideWithLoopbackAllowed(t *testing.T) {
	g := New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	for _, c := range policyCases {
		a := netip.MustParseAddr(c.addr)
		// Exactly 127.0.0.0/8 becomes reachable, including its IPv4-mapped spelling (the
		// same socket address); ::1 and the NAT64/6to4/compatible forms stay refused.
		want := c.reason == "" || a.Unmap().Is4() && netip.MustParsePrefix("127.0.0.0/8").Contains(a.Unmap())
		if allowed, _ := g.Decide(a); allowed != want {
			t.Errorf("Decide(%s) with 127.0.0.0/8 allowed = %v, want %v", c.addr, allowed, want)
		}
	}
}

func TestDecideAllowsExactlyWhatTheListContains(t *testing.T) {
	for _, c := range policyCases {
		if c.reason == "" {
			continue
		}
		a := netip.MustParseAddr(c.addr)
		own := netip.PrefixFrom(a, a.BitLen())
		g := New([]netip.Prefix{own})
		if allowed, _ := g.Decide(a); !allowed {
			t.Errorf("Decide(%s) with %s allowed = refused", c.addr, own)
		}
	}
	g := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")})
	for addr, want := range map[string]bool{
		"10.0.0.1": true, "10.255.255.255": true, "::ffff:10.1.2.3": true, "fd00::1": true,
		"172.16.0.1": false, "192.168.1.1": false, "fc00::1": false, "127.0.0.1": false,
		"64:ff9b::a00:1": false, "2002:a00:1::": false, "::10.0.0.1": false, "8.8.8.8": true,
	} {
		if allowed, _ := g.Decide(netip.MustParseAddr(addr)); allowed != want {
			t.Errorf("Decide(%s) with 10.0.0.0/8,fd00::/8 allowed = %v, want %v", addr, allowed, want)
		}
	}
	// A NAT64 range on the list lets NAT64 addresses through whatever they embed.
	g = New([]netip.Prefix{netip.MustParsePrefix("64:ff9b::/96")})
	if allowed, _ := g.Decide(netip.MustParseAddr("64:ff9b::7f00:1")); !allowed {
		t.Error("64:ff9b::7f00:1 refused although 64:ff9b::/96 is allowed")
	}
}

func TestDecideIgnoresZones(t *testing.T) {
	if allowed, reason := New(nil).Decide(netip.MustParseAddr("fe80::1%eth0")); allowed || reason != reasonLinkLocal {
		t.Errorf("fe80::1%%eth0: %v %q", allowed, reason)
	}
	if allowed, _ := New(nil).Decide(netip.Addr{}); allowed {
		t.Error("the zero Addr is allowed")
	}
	var nilGuard *Guard
	if allowed, _ := nilGuard.Decide(netip.MustParseAddr("127.0.0.1")); allowed {
		t.Error("a nil guard allows loopback")
	}
}

func TestParseAllow(t *testing.T) {
	for in, want := range map[string][]string{
		"":                             nil,
		" , ":                          nil,
		"127.0.0.0/8":                  {"127.0.0.0/8"},
		" 127.0.0.0/8 , ::1 ,":         {"127.0.0.0/8", "::1/128"},
		"10.1.2.3/8":                   {"10.0.0.0/8"},
		"192.168.1.10":                 {"192.168.1.10/32"},
		"::ffff:127.0.0.0/104":         {"127.0.0.0/8"},
		"fd00::/8,100.64.0.0/10":       {"fd00::/8", "100.64.0.0/10"},
		"169.254.169.254/32,fe80::/10": {"169.254.169.254/32", "fe80::/10"},
	} {
		got, err := ParseAllow(in)
		if err != nil {
			t.Errorf("ParseAllow(%q): %v", in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if !reflect.DeepEqual(s, want) {
			t.Errorf("ParseAllow(%q) = %v, want %v", in, s, want)
		}
	}
	for in, entry := range map[string]string{
		"10.0.0.0/33":               "10.0.0.0/33",
		"127.0.0.0/8,localhost":     "localhost",
		"10.0.0.0/8;192.168.0.0/16": "10.0.0.0/8;192.168.0.0/16",
		"fe80::1%eth0":              "fe80::1%eth0",
		"127.0.0.0/8, 300.0.0.0/8":  "300.0.0.0/8",
	} {
		_, err := ParseAllow(in)
		if err == nil {
			t.Errorf("ParseAllow(%q) accepted", in)
			continue
		}
		if !strings.Contains(err.Error(), AllowEnv) || !strings.Contains(err.Error(), `"`+entry+`"`) {
			t.Errorf("ParseAllow(%q) error %q should name %s and %q", in, err, AllowEnv, entry)
		}
	}
}

func TestParseHost(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":     "127.0.0.1",
		"127.1":         "127.0.0.1",
		"127.0.1":       "127.0.0.1",
		"2130706433":    "127.0.0.1",
		"0x7f000001":    "127.0.0.1",
		"0X7F.0.0.1":    "127.0.0.1",
		"0x7f.1":        "127.0.0.1",
		"0177.0.0.1":    "127.0.0.1",
		"0177.0.0.01":   "127.0.0.1",
		"017700000001":  "127.0.0.1",
		"127.0.0.1.":    "127.0.0.1",
		"10.0.0.5":      "10.0.0.5",
		"012.0.0.5":     "10.0.0.5",
		"167772165":     "10.0.0.5",
		"1.256":         "1.0.1.0",
		"0":             "0.0.0.0",
		"0x":            "0.0.0.0",
		"4294967295":    "255.255.255.255",
		"::ffff:7f00:1": "::ffff:127.0.0.1",
		"::1":           "::1",
		"fe80::1%eth0":  "fe80::1%eth0",
	} {
		a, kind, err := parseHost(in)
		if err != nil || kind != hostIP || a.String() != want {
			t.Errorf("parseHost(%q) = %v, %v, %v; want %s", in, a, kind, err, want)
		}
	}
	for _, in := range []string{"4294967296", "256.0.0.1", "1.2.3.4.5", "08.0.0.1", "0x1g.0.0.1", "1..1", "example.123", "1.2.3.0x100"} {
		if _, kind, err := parseHost(in); err == nil {
			t.Errorf("parseHost(%q) = kind %v, want an invalid-address error", in, kind)
		}
	}
	for in, want := range map[string]hostKind{
		"localhost": hostLocalhost, "LocalHost.": hostLocalhost, "api.localhost": hostLocalhost,
		"example.com": hostName, "127.0.0.1.nip.io": hostName, "localhost.example.com": hostName,
		"0x7f000001.example": hostName, "127.0.0.1..": hostName,
	} {
		if _, kind, err := parseHost(in); err != nil || kind != want {
			t.Errorf("parseHost(%q) = kind %v, %v; want %v", in, kind, err, want)
		}
	}
}
