package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// DialContext connects to address ("host:port") the way net.Dialer.DialContext does, for
// use as http.Transport.DialContext, but only to addresses the guard allows. It resolves the
// host itself, checks every address it got (one refused address refuses the dial: a name
// answering both a public and a private address is a rebinding attempt), then dials the
// checked IPs in order, so what is checked is what is connected to. Literal hosts in any
// spelling ("127.1", "0x7f000001") and "localhost" names are never sent to DNS. A refusal is
// a *RefusedError (errors.Is ErrRefused), returned before any connection is attempted.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	g = g.orDefault()
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("outbound: network %q is not supported", network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("outbound: %w", err)
	}
	addrs, err := g.resolve(ctx, network, host)
	if err != nil {
		return nil, err
	}
	var first error
	for _, a := range addrs {
		c, err := g.dial(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// resolve returns the checked addresses host stands for on network.
func (g *Guard) resolve(ctx context.Context, network, host string) ([]netip.Addr, error) {
	lit, kind, err := parseHost(host)
	if err != nil {
		return nil, fmt.Errorf("outbound: host %s %w", host, err)
	}
	switch kind {
	case hostIP:
		if ok, reason := g.Decide(lit); !ok {
			return nil, refusedAddr(host, lit.WithZone("").Unmap(), reason, false)
		}
		if lit.Is4In6() {
			lit = lit.Unmap()
		}
		if !fits(network, lit) {
			return nil, fmt.Errorf("outbound: %s is not an address of network %s", host, network)
		}
		return []netip.Addr{lit}, nil
	case hostLocalhost:
		var out []netip.Addr
		for _, a := range loopbackNames {
			if ok, _ := g.Decide(a); ok && fits(network, a) {
				out = append(out, a)
			}
		}
		if len(out) == 0 {
			return nil, refusedAddr(host, loopbackNames[0], reasonLoopback, false)
		}
		return out, nil
	}
	got, err := g.lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("outbound: lookup %s: %w", host, err)
	}
	var out []netip.Addr
	for _, a := range got {
		if a.Is4In6() {
			a = a.Unmap()
		}
		if ok, reason := g.Decide(a); !ok {
			return nil, refusedAddr(host, a.WithZone(""), reason, true)
		}
		if fits(network, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("outbound: lookup %s: no address for network %s", host, network)
	}
	return out, nil
}

func fits(network string, a netip.Addr) bool {
	switch network {
	case "tcp4":
		return a.Is4()
	case "tcp6":
		return a.Is6()
	}
	return true
}

// control re-checks the address a socket is about to connect to (net.Dialer.Control runs
// after the socket is made and before connect), so even a dial that bypassed resolve cannot
// reach a refused address.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return errors.New("outbound: refusing to connect to unparsable address " + address)
	}
	a := ap.Addr().WithZone("").Unmap()
	if ok, reason := g.Decide(a); !ok {
		return refusedAddr(a.String(), a, reason, false)
	}
	return nil
}
