package outbound

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Redirects says what a Client does with a 3xx answer.
type Redirects int

const (
	// NoRedirects returns a 3xx response to the caller as it is (the default; SPEC §9 for
	// Segment and SparkPost, and what workflow deliveries expect).
	NoRedirects Redirects = iota
	// FollowRedirects follows up to 10 redirects; every hop goes through the same transport,
	// so its target is checked by the guard (scheme, https rule, resolved address) again.
	FollowRedirects
)

// ClientConfig tunes the transport and client the guard builds. Zero durations take the
// defaults; a negative one disables that bound.
type ClientConfig struct {
	// Timeout bounds a whole request through Client, body read included (default 30 s).
	// A RoundTripper alone is bounded by its requests' contexts instead.
	Timeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake (default 10 s).
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response headers once the request is
	// written (default 30 s).
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout is how long an idle keep-alive connection is kept (default 90 s).
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle connections are kept per host (default 2).
	MaxIdleConnsPerHost int
	// BodyLimit is how many bytes of a response body can be read (default DefaultBodyLimit).
	BodyLimit int64
	// Redirects is the redirect policy of Client (default NoRedirects).
	Redirects Redirects
	// RequireHTTPS refuses plain http:// requests unless the URL's host is a literal address
	// (or "localhost") the allow-list contains: Segment endpoints (SPEC §9).
	RequireHTTPS bool
	// TLSConfig, when set, is cloned into the transport (tests pass an httptest root here).
	TLSConfig *tls.Config
}

func pick(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// RoundTripper returns the transport for tenant-chosen targets: it dials only through
// DialContext, never uses a proxy (HTTP_PROXY and friends are ignored), bounds TLS handshake,
// response headers (to 64 KiB and in time) and response bodies (cfg.BodyLimit, counted after
// gzip decoding), and turns every failure into a *ConnectError. Use it where a library takes
// an http.RoundTripper (analytics-go's Config.Transport).
func (g *Guard) RoundTripper(cfg ClientConfig) http.RoundTripper {
	g = g.orDefault()
	t := &http.Transport{
		Proxy:                  nil,
		DialContext:            g.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    pick(cfg.TLSHandshakeTimeout, 10*time.Second),
		ResponseHeaderTimeout:  pick(cfg.ResponseHeaderTimeout, 30*time.Second),
		IdleConnTimeout:        pick(cfg.IdleConnTimeout, 90*time.Second),
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if cfg.TLSConfig != nil {
		t.TLSClientConfig = cfg.TLSConfig.Clone()
	}
	limit := cfg.BodyLimit
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	return &guardTripper{g: g, base: t, limit: limit, requireHTTPS: cfg.RequireHTTPS}
}

// Client returns an *http.Client over RoundTripper(cfg) with cfg's timeout and redirect
// policy. With NoRedirects a 3xx comes back as the response, body readable, nothing followed.
func (g *Guard) Client(cfg ClientConfig) *http.Client {
	c := &http.Client{Transport: g.RoundTripper(cfg), Timeout: pick(cfg.Timeout, 30*time.Second)}
	if cfg.Redirects == FollowRedirects {
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return &ConnectError{Host: req.URL.Host, Err: errors.New("stopped after 10 redirects")}
			}
			return nil
		}
	} else {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// guardTripper is RoundTripper's result.
type guardTripper struct {
	g            *Guard
	base         *http.Transport
	limit        int64
	requireHTTPS bool
}

func (t *guardTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.check(req); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &ConnectError{Host: req.URL.Host, Err: err}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, &ConnectError{Host: req.URL.Host, Err: err}
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.limit, host: req.URL.Host}
	return resp, nil
}

// check applies the rules that need the URL, not only the address: the scheme and https.
func (t *guardTripper) check(req *http.Request) error {
	switch req.URL.Scheme {
	case "https":
		return nil
	case "http":
		if !t.requireHTTPS || t.g.plainHTTPAllowed(req.URL.Hostname()) {
			return nil
		}
		return &RefusedError{Host: req.URL.Hostname(), Reason: "plain http:// is refused for this target; use https://",
			tenant: "plain http:// is refused by the outbound policy; use https://"}
	}
	return &RefusedError{Host: req.URL.Hostname(), Reason: fmt.Sprintf("scheme %q is refused", req.URL.Scheme),
		tenant: "only http:// and https:// targets are allowed"}
}

// CloseIdleConnections closes the transport's idle connections.
func (t *guardTripper) CloseIdleConnections() { t.base.CloseIdleConnections() }

// plainHTTPAllowed reports whether http:// may be used towards host when https is required:
// only when host is a literal address in the allow-list, or "localhost" with loopback allowed.
// A name is never enough, since what it resolves to can change after the check.
func (g *Guard) plainHTTPAllowed(host string) bool {
	a, kind, err := parseHost(host)
	switch {
	case err != nil:
		return false
	case kind == hostIP:
		return g.listed(a)
	case kind == hostLocalhost:
		for _, l := range loopbackNames {
			if g.listed(l) {
				return true
			}
		}
	}
	return false
}
