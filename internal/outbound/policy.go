package outbound

import "net/netip"

// rule is one special-purpose range with what its addresses are called in messages.
type rule struct {
	p      netip.Prefix
	reason string
}

func rules(pairs ...string) []rule {
	out := make([]rule, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, rule{netip.MustParsePrefix(pairs[i]), pairs[i+1]})
	}
	return out
}

// Reasons, shared so that messages and tests agree.
const (
	reasonLoopback    = "a loopback address"
	reasonPrivate     = "a private address"
	reasonLinkLocal   = "a link-local address"
	reasonMetadata    = "a link-local address (the cloud metadata service)"
	reasonCGNAT       = "a carrier-grade NAT address"
	reasonUnspecified = "an unspecified address"
	reasonMulticast   = "a multicast address"
	reasonBroadcast   = "a broadcast address"
	reasonReserved    = "a reserved address"
	reasonDocs        = "a documentation address"
	reasonBenchmark   = "a benchmarking address"
	reasonTeredo      = "a Teredo tunnel address"
	reasonCompat      = "a deprecated IPv4-compatible IPv6 address"
)

// v4Rules are the IPv4 ranges refused unless allowed (IANA's special-purpose registry, minus
// nothing that a public target could need). First match wins.
var v4Rules = rules(
	"255.255.255.255/32", reasonBroadcast,
	"169.254.169.254/32", reasonMetadata,
	"0.0.0.0/8", reasonUnspecified,
	"10.0.0.0/8", reasonPrivate,
	"100.64.0.0/10", reasonCGNAT,
	"127.0.0.0/8", reasonLoopback,
	"169.254.0.0/16", reasonLinkLocal,
	"172.16.0.0/12", reasonPrivate,
	"192.0.0.0/24", reasonReserved, // IETF protocol assignments
	"192.0.2.0/24", reasonDocs,
	"192.88.99.0/24", reasonReserved, // deprecated 6to4 relay anycast
	"192.168.0.0/16", reasonPrivate,
	"198.18.0.0/15", reasonBenchmark,
	"198.51.100.0/24", reasonDocs,
	"203.0.113.0/24", reasonDocs,
	"224.0.0.0/4", reasonMulticast,
	"240.0.0.0/4", reasonReserved,
)

// v6Rules are the IPv6 ranges refused unless allowed, after the forms that embed an IPv4
// address have been looked at. First match wins.
var v6Rules = rules(
	"64:ff9b:1::/48", reasonPrivate, // local-use NAT64
	"100::/64", reasonReserved, // discard-only
	"2001::/32", reasonTeredo,
	"2001:db8::/32", reasonDocs,
	"2001::/23", reasonReserved, // IETF protocol assignments
	"3fff::/20", reasonDocs,
	"fc00::/7", reasonPrivate,
	"fe80::/10", reasonLinkLocal,
	"fec0::/10", reasonPrivate, // deprecated site-local
	"ff00::/8", reasonMulticast,
)

var (
	v4Compat    = netip.MustParsePrefix("::/96")
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	v6Unicast   = netip.MustParsePrefix("2000::/3")
	unspecified = netip.IPv6Unspecified()
	loopback6   = netip.IPv6Loopback()
)

// classify returns why a (unmapped, without zone) is refused by the policy, or "" when it is
// a public address.
func classify(a netip.Addr) string {
	if a.Is4() {
		for _, r := range v4Rules {
			if r.p.Contains(a) {
				return r.reason
			}
		}
		return ""
	}
	b := a.As16()
	switch {
	case a == unspecified:
		return reasonUnspecified
	case a == loopback6:
		return reasonLoopback
	case v4Compat.Contains(a):
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		if r := classify(v4); r != "" {
			return "an IPv4-compatible IPv6 address embedding " + v4.String() + ", " + r
		}
		return reasonCompat
	case nat64.Contains(a):
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		if r := classify(v4); r != "" {
			return "a NAT64 address embedding " + v4.String() + ", " + r
		}
		return ""
	case sixToFour.Contains(a):
		v4 := netip.AddrFrom4([4]byte(b[2:6]))
		if r := classify(v4); r != "" {
			return "a 6to4 address embedding " + v4.String() + ", " + r
		}
		return ""
	}
	for _, r := range v6Rules {
		if r.p.Contains(a) {
			return r.reason
		}
	}
	if !v6Unicast.Contains(a) {
		return reasonReserved
	}
	return ""
}
