package outbound

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRedirectsAreNotFollowed(t *testing.T) {
	target := newServer(t, ok)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", target.URL+"/elsewhere")
		w.WriteHeader(http.StatusFound)
		w.Write([]byte("moved"))
	})
	g := newTestGuard(t, "127.0.0.0/8")
	resp, err := g.Client(ClientConfig{}).Post(srv.URL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != target.URL+"/elsewhere" {
		t.Errorf("got %d Location %q, want the 302 itself", resp.StatusCode, resp.Header.Get("Location"))
	}
	if b, _, err := ReadLimited(resp.Body, 1<<10); err != nil || string(b) != "moved" {
		t.Errorf("3xx body %q, %v", b, err)
	}
	if target.hits.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestFollowedRedirectsAreChecked(t *testing.T) {
	target := newServer(t, ok)
	var location string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, location, http.StatusTemporaryRedirect)
	})
	lookup := staticLookup("10.1.2.3")
	g := newTestGuard(t, "127.0.0.0/8", lookup)
	c := g.Client(ClientConfig{Redirects: FollowRedirects})

	location = target.URL + "/ok"
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || target.hits.Load() != 1 {
		t.Errorf("allowed redirect: %d, %d hits", resp.StatusCode, target.hits.Load())
	}

	for _, loc := range []string{"http://10.0.0.5/x", "http://169.254.169.254/latest/meta-data/", "http://[::1]:" + target.port() + "/", "http://internal.test/"} {
		location = loc
		_, err := c.Get(srv.URL)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("redirect to %s: %v, want a refusal", loc, err)
		}
	}
	if n := g.dials.Load(); n != 2 { // the first GET and its allowed redirect, nothing more
		t.Errorf("%d dials, want 2", n)
	}

	location = srv.URL // a loop
	if _, err := c.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "10 redirects") {
		t.Errorf("redirect loop: %v", err)
	}
}

func TestBodyLimit(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1<<20)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/exact":
			w.Write(big[:DefaultBodyLimit])
		case "/gzip": // 16 MiB of zeros in a few KiB: the limit counts decoded bytes
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zero := make([]byte, 1<<20)
			for range 16 {
				zw.Write(zero)
			}
			zw.Close()
		default:
			w.Write(big)
		}
	})
	g := newTestGuard(t, "127.0.0.0/8")
	c := g.Client(ClientConfig{})
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	// A reader that knows nothing of the limit still gets at most 64 KiB, then an error.
	b, err := io.ReadAll(get("/big").Body)
	if len(b) != DefaultBodyLimit || !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("ReadAll: %d bytes, %v; want %d and ErrBodyTooLarge", len(b), err, DefaultBodyLimit)
	}
	b, truncated, err := ReadLimited(get("/big").Body, 1<<30)
	if len(b) != DefaultBodyLimit || !truncated || err != nil {
		t.Errorf("ReadLimited past the body limit: %d bytes, truncated %v, %v", len(b), truncated, err)
	}
	b, truncated, err = ReadLimited(get("/big").Body, 100)
	if len(b) != 100 || !truncated || err != nil {
		t.Errorf("ReadLimited(100): %d bytes, truncated %v, %v", len(b), truncated, err)
	}
	b, err = io.ReadAll(get("/exact").Body)
	if len(b) != DefaultBodyLimit || err != nil {
		t.Errorf("a body of exactly the limit: %d bytes, %v", len(b), err)
	}
	b, err = io.ReadAll(get("/gzip").Body)
	if len(b) != DefaultBodyLimit || !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("gzip bomb: %d bytes, %v", len(b), err)
	}

	// A client may ask for a larger limit (back-fill pages).
	resp, err := g.Client(ClientConfig{BodyLimit: 2 << 20}).Get(srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); len(b) != len(big) || err != nil {
		t.Errorf("BodyLimit 2 MiB: %d bytes, %v", len(b), err)
	}
}

func TestReadLimitedAndLimitBody(t *testing.T) {
	b, truncated, err := ReadLimited(strings.NewReader("hello"), 5)
	if string(b) != "hello" || truncated || err != nil {
		t.Errorf("exact: %q %v %v", b, truncated, err)
	}
	b, truncated, err = ReadLimited(strings.NewReader("hello!"), 5)
	if string(b) != "hello" || !truncated || err != nil {
		t.Errorf("one over: %q %v %v", b, truncated, err)
	}
	boom := errors.New("boom")
	_, _, err = ReadLimited(io.MultiReader(strings.NewReader("he"), errReader{boom}), 5)
	if !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}

	body := LimitBody(io.NopCloser(strings.NewReader("hello world")), 5)
	b, err = io.ReadAll(body)
	if string(b) != "hello" || !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("LimitBody: %q %v", b, err)
	}
	if _, err := body.Read(make([]byte, 1)); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("LimitBody is not sticky: %v", err)
	}

	rt := LimitResponses(roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(strings.Repeat("y", 1<<20)))}, nil
	}), 0)
	resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://example.test/", nil))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); len(b) != DefaultBodyLimit || !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("LimitResponses: %d bytes, %v", len(b), err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newHangingServer starts a server that never answers until the client goes away or the test
// ends (its release is registered after the server's Close, so it runs first).
func newHangingServer(t *testing.T) *server {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	return s
}

func TestTimeout(t *testing.T) {
	srv := newHangingServer(t)
	g := newTestGuard(t, "127.0.0.0/8")
	start := time.Now()
	_, err := g.Client(ClientConfig{Timeout: 200 * time.Millisecond}).Get(srv.URL)
	if err == nil {
		t.Fatal("a hanging server answered")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("timed out after %s, want about 200ms", elapsed)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %q is not a timeout for the operator", err)
	}
	if want := "could not connect to 127.0.0.1:" + srv.port(); TenantMessage(err) != want {
		t.Errorf("tenant message %q, want %q", TenantMessage(err), want)
	}

	// The response-header timeout bounds a bare RoundTripper too (the Segment sender's case).
	rt := g.RoundTripper(ClientConfig{ResponseHeaderTimeout: 200 * time.Millisecond})
	req, _ := http.NewRequest("POST", srv.URL+"/v1/batch", strings.NewReader(`{}`))
	_, err = rt.RoundTrip(req)
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Host != "127.0.0.1:"+srv.port() || !ce.Timeout() {
		t.Errorf("RoundTrip: %v, want a timeout *ConnectError naming the host", err)
	}
}

// Closed ports, services that do not speak HTTP, resets and hangs read the same to a tenant;
// only the operator's detail tells them apart.
func TestTenantMessageDoesNotTellFailuresApart(t *testing.T) {
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	serve := func(l net.Listener, handle func(net.Conn)) {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go handle(c)
			}
		}()
	}
	closed := listen()
	closedAddr := closed.Addr().String()
	closed.Close()

	ssh := listen()
	serve(ssh, func(c net.Conn) {
		c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
		c.Close()
	})
	reset := listen()
	serve(reset, func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	silent := listen()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	serve(silent, func(c net.Conn) {
		defer c.Close()
		go io.Copy(io.Discard, c)
		<-release
	})
	hanging := newHangingServer(t)

	g := newTestGuard(t, "127.0.0.0/8")
	c := g.Client(ClientConfig{Timeout: 300 * time.Millisecond})
	details := map[string]bool{}
	for name, addr := range map[string]string{
		"closed port": closedAddr, "ssh banner": ssh.Addr().String(), "reset": reset.Addr().String(),
		"silent tcp": silent.Addr().String(), "hanging http": hanging.Listener.Addr().String(),
	} {
		_, err := c.Post("http://"+addr+"/hook", "application/json", strings.NewReader(`{}`))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if got, want := TenantMessage(err), "could not connect to "+addr; got != want {
			t.Errorf("%s: tenant message %q, want %q", name, got, want)
		}
		details[err.Error()] = true
	}
	if len(details) < 2 {
		t.Errorf("operator details are all the same: %v", details)
	}
}

func TestRequireHTTPS(t *testing.T) {
	srv := newServer(t, ok)
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused certificate below aborts a handshake
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	tlsConfig := tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig
	_, tlsPort, _ := net.SplitHostPort(tlsSrv.Listener.Addr().String())

	g := newTestGuard(t, "127.0.0.0/8", staticLookup("127.0.0.1"))
	c := g.Client(ClientConfig{RequireHTTPS: true, TLSConfig: tlsConfig})

	// Plain http to a literal address on the list is fine (tests, benchmarks, a local Segment).
	for _, u := range []string{srv.URL, "http://localhost:" + srv.port() + "/"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Errorf("GET %s: %v", u, err)
			continue
		}
		resp.Body.Close()
	}
	// Plain http to a name is refused before dialling, whatever it resolves to.
	before := g.dials.Load()
	_, err := c.Get("http://segment.test:" + srv.port() + "/v1/batch")
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("plain http to a name: %v, want a refusal", err)
	}
	if want := "segment.test:" + srv.port() + ": plain http:// is refused by the outbound policy; use https://"; TenantMessage(err) != want {
		t.Errorf("tenant message %q, want %q", TenantMessage(err), want)
	}
	if g.dials.Load() != before {
		t.Error("dialled")
	}
	// https to a name: the socket goes to the checked 127.0.0.1, TLS verifies the name.
	resp, err := c.Get("https://example.com:" + tlsPort + "/")
	if err != nil {
		t.Fatalf("https through the guard: %v", err)
	}
	resp.Body.Close()
	if _, err := c.Get("https://segment.test:" + tlsPort + "/"); err == nil {
		t.Error("a certificate for another name was accepted")
	}
}

// The transport never uses HTTP_PROXY and friends: a proxy would make the guard check the
// proxy's address instead of the target's.
func TestProxyEnvironmentIsIgnored(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://10.9.9.9:3128")
	t.Setenv("HTTPS_PROXY", "http://10.9.9.9:3128")
	t.Setenv("NO_PROXY", "")
	srv := newServer(t, ok)
	g := newTestGuard(t, "127.0.0.0/8", staticLookup("127.0.0.1"))
	resp, err := g.Client(ClientConfig{}).Get("http://hook.test:" + srv.port() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if srv.hits.Load() != 1 {
		t.Error("the request did not reach the target directly")
	}
	// net/http reads the proxy variables once per process, so check the setting as well.
	if p := g.RoundTripper(ClientConfig{}).(*guardTripper).base.Proxy; p != nil {
		t.Error("the transport has a Proxy function")
	}
}

func TestTenantMessage(t *testing.T) {
	if TenantMessage(nil) != "" {
		t.Error("nil error has a message")
	}
	if got := TenantMessage(errors.New("dial tcp 10.0.0.1:80: i/o timeout")); got != "could not connect" {
		t.Errorf("unknown error: %q", got)
	}
	ce := &ConnectError{Host: "hooks.example.com", Err: context.DeadlineExceeded}
	if ce.TenantMessage() != "could not connect to hooks.example.com" {
		t.Errorf("ConnectError: %q", ce.TenantMessage())
	}
	if !strings.Contains(ce.Error(), "deadline exceeded") {
		t.Errorf("detail %q", ce.Error())
	}
}
