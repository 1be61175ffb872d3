package outbound

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestDialToLoopbackNeedsTheAllowList(t *testing.T) {
	srv := newServer(t, ok)

	g := newTestGuard(t, "")
	_, err := g.Client(ClientConfig{}).Get(srv.URL)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("GET %s without allow-list: %v, want a refusal", srv.URL, err)
	}
	if want := "127.0.0.1:" + srv.port() + ": address refused by the outbound policy"; TenantMessage(err) != want {
		t.Errorf("tenant message %q, want %q", TenantMessage(err), want)
	}
	if g.dials.Load() != 0 || srv.conns.Load() != 0 {
		t.Errorf("refused request still connected: %d dials, %d connections", g.dials.Load(), srv.conns.Load())
	}

	g = newTestGuard(t, "127.0.0.0/8")
	resp, err := g.Client(ClientConfig{}).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET %s with 127.0.0.0/8 allowed: %v", srv.URL, err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "ok" {
		t.Errorf("got %d %q", resp.StatusCode, b)
	}
}

// Every spelling of 127.0.0.1 reaches the server when loopback is allowed (so the guard reads
// them as the dialer would) and none does when it is not.
func TestDialSpellingsOfLoopback(t *testing.T) {
	srv := newServer(t, ok)
	for _, host := range []string{"127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1", "127.0.0.1.", "[::ffff:7f00:1]", "[::ffff:127.0.0.1]", "localhost", "api.localhost"} {
		u := "http://" + host + ":" + srv.port() + "/"
		g := newTestGuard(t, "")
		if _, err := g.Client(ClientConfig{}).Get(u); !errors.Is(err, ErrRefused) {
			t.Errorf("GET %s without allow-list: %v, want a refusal", u, err)
		}
		if g.dials.Load() != 0 {
			t.Errorf("GET %s without allow-list dialled", u)
		}
		g = newTestGuard(t, "127.0.0.0/8")
		resp, err := g.Client(ClientConfig{}).Get(u)
		if err != nil {
			t.Errorf("GET %s with 127.0.0.0/8: %v", u, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
	}
	if srv.conns.Load() == 0 {
		t.Error("the server saw no connection at all")
	}
}

// Addresses that must be refused are refused by DialContext before any connection attempt,
// with or without loopback allowed.
func TestDialRefusesBeforeConnecting(t *testing.T) {
	addrs := []string{
		"10.0.0.5:80", "172.16.0.1:80", "192.168.1.1:443", "[fd00::1]:80", "[fe80::1%lo]:80",
		"169.254.169.254:80", "[::ffff:169.254.169.254]:80", "[64:ff9b::a9fe:a9fe]:80",
		"[2002:a9fe:a9fe::1]:80", "[::169.254.169.254]:80", "100.64.0.1:80", "0.0.0.0:80",
		"[::]:80", "224.0.0.1:80", "[ff02::1]:80", "255.255.255.255:80", "240.0.0.1:80",
		"[::1]:80", "0xa000005:80", "012.0.0.5:80", "167772165:80", "0:80",
	}
	for _, allow := range []string{"", "127.0.0.0/8"} {
		g := newTestGuard(t, allow)
		for _, a := range addrs {
			for _, network := range []string{"tcp", "tcp4", "tcp6"} {
				c, err := g.DialContext(context.Background(), network, a)
				if err == nil {
					c.Close()
					t.Errorf("DialContext(%s, %s) with allow %q connected", network, a, allow)
				} else if !errors.Is(err, ErrRefused) {
					t.Errorf("DialContext(%s, %s) with allow %q: %v, want a refusal", network, a, allow, err)
				}
			}
		}
		if n := g.dials.Load(); n != 0 {
			t.Errorf("allow %q: %d connection attempts got past the guard", allow, n)
		}
	}
}

func TestDialRefusesOtherNetworks(t *testing.T) {
	g := newTestGuard(t, "127.0.0.0/8")
	for _, network := range []string{"udp", "unix", "ip4:icmp"} {
		if _, err := g.DialContext(context.Background(), network, "127.0.0.1:53"); err == nil {
			t.Errorf("DialContext(%s) accepted", network)
		}
	}
}

// The dialer's Control hook checks the socket's address too, so a dial that skipped
// resolution still cannot connect to a refused address.
func TestControlChecksTheSocketAddress(t *testing.T) {
	g := New(nil)
	for _, a := range []string{"10.0.0.5:80", "127.0.0.1:80", "[::1]:80", "[::ffff:127.0.0.1]:80", "169.254.169.254:80"} {
		if err := g.control("tcp", a, nil); !errors.Is(err, ErrRefused) {
			t.Errorf("control(%s) = %v, want a refusal", a, err)
		}
	}
	if err := g.control("tcp", "8.8.8.8:443", nil); err != nil {
		t.Errorf("control(8.8.8.8:443) = %v", err)
	}
	if err := New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}).control("tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("control(127.0.0.1) with loopback allowed = %v", err)
	}

	srv := newServer(t, ok)
	c, err := g.dialer.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("the guard's net.Dialer connected to 127.0.0.1 without the allow-list")
	}
	if !errors.Is(err, ErrRefused) {
		t.Errorf("net.Dialer error %v, want a refusal", err)
	}
}

// A name that resolves to a public address and to 127.0.0.1 in the same answer is refused:
// nothing is dialled, not even the public address.
func TestRebindingMixedAnswer(t *testing.T) {
	srv := newServer(t, ok)
	g := newTestGuard(t, "", staticLookup("93.184.216.34", "127.0.0.1"))
	u := "http://rebind.test:" + srv.port() + "/"
	_, err := g.Client(ClientConfig{}).Get(u)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("GET %s: %v, want a refusal", u, err)
	}
	var re *RefusedError
	if !errors.As(err, &re) || !re.Resolved || re.Addr != loopback4 {
		t.Errorf("refusal %#v should name the resolved 127.0.0.1", re)
	}
	if !strings.Contains(err.Error(), "rebind.test resolves to 127.0.0.1, a loopback address") {
		t.Errorf("operator detail %q lacks the resolved address", err)
	}
	// The tenant is not told what the name resolved to (it may be an internal address).
	if want := "could not connect to rebind.test:" + srv.port(); TenantMessage(err) != want {
		t.Errorf("tenant message %q, want %q", TenantMessage(err), want)
	}
	if g.dials.Load() != 0 || srv.conns.Load() != 0 {
		t.Errorf("%d dials, %d connections; want none", g.dials.Load(), srv.conns.Load())
	}
}

// A name that resolves to a public address at one lookup and to 127.0.0.1 at the next is
// checked again at every dial: the decision made on the first answer is not reused.
func TestRebindingBetweenLookups(t *testing.T) {
	srv := newServer(t, ok)
	var lookups atomic.Int64
	g := New(nil, WithLookup(func(_ context.Context, host string) ([]netip.Addr, error) {
		if lookups.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		}
		return []netip.Addr{loopback4}, nil
	}))
	var dialled []string
	g.dial = func(_ context.Context, _, address string) (net.Conn, error) {
		dialled = append(dialled, address) // never dials for real: the test stays on this machine
		return nil, errors.New("test: not dialled")
	}
	addr := "rebind.test:" + srv.port()
	if _, err := g.DialContext(context.Background(), "tcp", addr); err == nil || errors.Is(err, ErrRefused) {
		t.Fatalf("first dial (public answer): %v, want the test dialler's error", err)
	}
	_, err := g.DialContext(context.Background(), "tcp", addr)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("second dial (answer 127.0.0.1): %v, want a refusal", err)
	}
	if want := []string{"93.184.216.34:" + srv.port()}; len(dialled) != 1 || dialled[0] != want[0] {
		t.Errorf("dialled %v, want only %v", dialled, want)
	}
	if srv.conns.Load() != 0 {
		t.Error("the loopback server got a connection")
	}
}

// The address dialled is the one the lookup gave: with loopback allowed, a made-up name
// reaches the local server, and it still sees the name in the Host header.
func TestDialUsesTheCheckedAddress(t *testing.T) {
	var host atomic.Value
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { host.Store(r.Host) })
	g := newTestGuard(t, "127.0.0.0/8", staticLookup("127.0.0.1"))
	resp, err := g.Client(ClientConfig{}).Get("http://hook.test:" + srv.port() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := host.Load(); got != "hook.test:"+srv.port() {
		t.Errorf("Host header %v", got)
	}

	g = newTestGuard(t, "", staticLookup("::ffff:127.0.0.1"))
	if _, err := g.Client(ClientConfig{}).Get("http://hook.test:" + srv.port() + "/"); !errors.Is(err, ErrRefused) {
		t.Errorf("a name resolving to ::ffff:127.0.0.1: %v, want a refusal", err)
	}
	if g.dials.Load() != 0 {
		t.Error("dialled")
	}
}

func TestDialLookupFailure(t *testing.T) {
	g := newTestGuard(t, "127.0.0.0/8", WithLookup(func(context.Context, string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: "nowhere.test", IsNotFound: true}
	}))
	_, err := g.Client(ClientConfig{}).Get("http://nowhere.test/")
	if err == nil || errors.Is(err, ErrRefused) {
		t.Fatalf("err %v", err)
	}
	if TenantMessage(err) != "could not connect to nowhere.test" {
		t.Errorf("tenant message %q", TenantMessage(err))
	}
	if !strings.Contains(err.Error(), "no such host") {
		t.Errorf("operator detail %q lost the cause", err)
	}
}
