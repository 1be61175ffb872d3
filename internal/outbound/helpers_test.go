package outbound

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
)

// testGuard is a guard whose dials may reach only 127.0.0.1 and whose lookups fail unless a
// test injects one: a test can never reach another machine, even if the guard is broken.
type testGuard struct {
	*Guard
	dials atomic.Int64 // connection attempts that got past the guard's checks
}

var loopback4 = netip.MustParseAddr("127.0.0.1")

func newTestGuard(t *testing.T, allow string, opts ...Option) *testGuard {
	t.Helper()
	prefixes, err := ParseAllow(allow)
	if err != nil {
		t.Fatal(err)
	}
	noDNS := WithLookup(func(_ context.Context, host string) ([]netip.Addr, error) {
		t.Errorf("unexpected DNS lookup of %q: tests inject their lookups", host)
		return nil, errors.New("test: no DNS")
	})
	tg := &testGuard{Guard: New(prefixes, append([]Option{noDNS}, opts...)...)}
	real := tg.dial
	tg.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		tg.dials.Add(1)
		if ap, err := netip.ParseAddrPort(address); err != nil || ap.Addr() != loopback4 {
			t.Errorf("dial to %s attempted: tests may dial only 127.0.0.1", address)
			return nil, errors.New("test: dial refused")
		}
		return real(ctx, network, address)
	}
	return tg
}

// staticLookup answers every name with addrs.
func staticLookup(addrs ...string) Option {
	return WithLookup(func(context.Context, string) ([]netip.Addr, error) {
		out := make([]netip.Addr, len(addrs))
		for i, a := range addrs {
			out[i] = netip.MustParseAddr(a)
		}
		return out, nil
	})
}

// server is an httptest server on 127.0.0.1 that counts the connections it accepted.
type server struct {
	*httptest.Server
	conns atomic.Int64
	hits  atomic.Int64
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// port returns the server's port.
func (s *server) port() string {
	_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
	return p
}

func ok(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }
