// Package outbound is the one place that connects to targets a tenant chose: workflow URLs,
// Segment endpoints and back-fill base URLs (SPEC §9). A Guard refuses loopback, private,
// link-local and other non-public addresses unless the operator lists them in
// SWITCHBOARD_OUTBOUND_ALLOW. The check runs at dial time on the resolved address, so a name
// that resolves to a public address when it is saved and to 127.0.0.1 when it is used (DNS
// rebinding) is still refused; CheckURL gives the early, field-named 400 for literal addresses.
package outbound

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// AllowEnv is the environment variable holding the operator's allow-list: comma-separated
// CIDRs (or single addresses) that the guard lets through although the policy would refuse them.
const AllowEnv = "SWITCHBOARD_OUTBOUND_ALLOW"

// ParseAllow parses the value of SWITCHBOARD_OUTBOUND_ALLOW. Entries are CIDRs ("127.0.0.0/8",
// "fd00::/8") or single addresses (taken as /32 or /128), separated by commas; blanks around
// entries and empty entries are ignored, so "" is the empty list. A host part with bits set
// past the prefix length is masked ("10.1.2.3/8" is 10.0.0.0/8).
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(entry, "/") {
			var err error
			if p, err = netip.ParsePrefix(entry); err != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR (want e.g. 10.0.0.0/8 or fd00::/8)", AllowEnv, entry)
			}
		} else {
			a, err := netip.ParseAddr(entry)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%s: %q is not a CIDR or an IP address (want e.g. 10.0.0.0/8 or fd00::/8)", AllowEnv, entry)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return normalize(out), nil
}

// normalize masks each prefix and turns IPv4-mapped IPv6 prefixes (::ffff:10.0.0.0/104) into
// the IPv4 prefixes they denote, since the guard checks mapped addresses in their IPv4 form.
func normalize(in []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

// LookupFunc resolves a host name to its addresses; tests inject one to play DNS rebinding.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func defaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// Guard decides which addresses outbound connections may reach and makes those connections.
// It is immutable after New and safe for concurrent use; a nil *Guard behaves as New(nil).
type Guard struct {
	allow          []netip.Prefix
	lookup         LookupFunc
	connectTimeout time.Duration
	dialer         *net.Dialer
	// dial connects to one checked "ip:port"; tests replace it to prove nothing else is dialled.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Option configures a Guard.
type Option func(*Guard)

// WithLookup makes the guard resolve names with fn instead of the system resolver.
func WithLookup(fn LookupFunc) Option { return func(g *Guard) { g.lookup = fn } }

// WithConnectTimeout bounds each TCP connection attempt (default 10 s).
func WithConnectTimeout(d time.Duration) Option { return func(g *Guard) { g.connectTimeout = d } }

// New returns a guard that lets through, beyond public addresses, exactly the addresses
// contained in allow (as parsed by ParseAllow from SWITCHBOARD_OUTBOUND_ALLOW).
func New(allow []netip.Prefix, opts ...Option) *Guard {
	g := &Guard{allow: normalize(allow), lookup: defaultLookup, connectTimeout: 10 * time.Second}
	for _, o := range opts {
		o(g)
	}
	if g.lookup == nil {
		g.lookup = defaultLookup
	}
	g.dialer = &net.Dialer{Timeout: g.connectTimeout, KeepAlive: 30 * time.Second, Control: g.control}
	g.dial = g.dialer.DialContext
	return g
}

// defaultGuard is what a nil *Guard stands for (set in init: New refers back to it).
var defaultGuard *Guard

func init() { defaultGuard = New(nil) }

func (g *Guard) orDefault() *Guard {
	if g == nil {
		return defaultGuard
	}
	return g
}

// Allow returns the guard's allow-list, for the startup log.
func (g *Guard) Allow() []netip.Prefix {
	return append([]netip.Prefix(nil), g.orDefault().allow...)
}

// Decide reports whether the guard lets a connection to addr through. When it does not,
// reason says what kind of address addr is ("a private address", "a NAT64 address embedding
// 127.0.0.1, a loopback address"), ready to follow "X is". IPv4-mapped IPv6 addresses
// (::ffff:10.0.0.5) are decided as the IPv4 address they are; every other IPv6 form is
// allowed by the list only if the list contains it as written.
func (g *Guard) Decide(addr netip.Addr) (allowed bool, reason string) {
	g = g.orDefault()
	if !addr.IsValid() {
		return false, "not a valid address"
	}
	a := addr.WithZone("").Unmap()
	if g.listed(a) {
		return true, ""
	}
	r := classify(a)
	return r == "", r
}

// listed reports whether a is in the allow-list.
func (g *Guard) listed(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	for _, p := range g.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// loopbackNames are the addresses "localhost" stands for (RFC 6761): never looked up in DNS.
var loopbackNames = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}

// localhostAllowed reports whether a name like "localhost" may be reached: when the guard
// lets at least one of its loopback addresses through.
func (g *Guard) localhostAllowed() bool {
	for _, a := range loopbackNames {
		if ok, _ := g.Decide(a); ok {
			return true
		}
	}
	return false
}

// LoopbackOnly is a guard that allows 127.0.0.0/8 besides the public internet: what the
// project's tests and benchmarks use, whose fake Segment and workflow receivers listen on
// loopback (the same as SWITCHBOARD_OUTBOUND_ALLOW=127.0.0.0/8).
func LoopbackOnly() *Guard {
	return New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
}

// Allows reports whether host is a literal address (or "localhost") that the operator's
// allow-list contains: such a host may be used where only well-known public hosts are
// accepted otherwise (a back-fill base URL that is not SparkPost's), and over plain http.
func (g *Guard) Allows(host string) bool { return g.orDefault().plainHTTPAllowed(host) }
