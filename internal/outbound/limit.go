package outbound

import (
	"errors"
	"io"
	"net/http"
)

// DefaultBodyLimit is how much of a response body is read unless a client is configured
// otherwise: answers of receivers are only shown in delivery errors or parsed for a status.
const DefaultBodyLimit = 64 << 10

// ErrBodyTooLarge is returned by a limited body once its limit is read and more bytes remain.
var ErrBodyTooLarge = errors.New("outbound: response body is larger than the limit")

// ReadLimited reads at most n bytes of r. truncated reports that r had more (the rest is
// left unread); err is a real read error only: a limited body's ErrBodyTooLarge counts as
// truncated.
func ReadLimited(r io.Reader, n int64) (b []byte, truncated bool, err error) {
	n = max(n, 0)
	b, err = io.ReadAll(io.LimitReader(r, n+1))
	if errors.Is(err, ErrBodyTooLarge) {
		truncated, err = true, nil
	}
	if int64(len(b)) > n {
		b, truncated = b[:n], true
	}
	return b, truncated, err
}

// LimitBody returns body limited to n bytes whoever reads it: reads return at most n bytes,
// then io.EOF if the body ends there and ErrBodyTooLarge if it does not. Close closes body.
func LimitBody(body io.ReadCloser, n int64) io.ReadCloser {
	return &limitedBody{rc: body, left: max(n, 0)}
}

// limitedBody is LimitBody's reader; host, when set, wraps read errors in a ConnectError so
// that TenantMessage can name the target.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	host string
	err  error // sticky, once the body ended or failed
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.left <= 0 {
		var one [1]byte
		n, err := io.ReadFull(b.rc, one[:])
		switch {
		case n > 0:
			b.err = ErrBodyTooLarge
		case err == io.EOF:
			b.err = io.EOF
		default:
			b.err = b.wrap(err)
		}
		return 0, b.err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if err != nil {
		if err != io.EOF {
			err = b.wrap(err)
		}
		b.err = err
	}
	return n, err
}

func (b *limitedBody) wrap(err error) error {
	if b.host == "" {
		return err
	}
	return &ConnectError{Host: b.host, Err: err}
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// LimitResponses wraps rt so that every response body it returns reads at most n bytes
// (DefaultBodyLimit if n <= 0). Use it around a transport that does not come from this
// package (a test double, for instance) so the limit holds whatever the transport.
func LimitResponses(rt http.RoundTripper, n int64) http.RoundTripper {
	if n <= 0 {
		n = DefaultBodyLimit
	}
	return &limitTripper{base: rt, limit: n}
}

type limitTripper struct {
	base  http.RoundTripper
	limit int64
}

func (t *limitTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.limit}
	return resp, nil
}

// CloseIdleConnections passes through, so http.Client.CloseIdleConnections still works.
func (t *limitTripper) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
