package outbound

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
)

// ErrRefused matches (with errors.Is) every refusal by the outbound policy.
var ErrRefused = errors.New("refused by the outbound policy")

// RefusedError is a connection the policy refused before anything was sent: the target's
// address is not public and not allowed, or the request breaks a rule of the client (plain
// http:// where https:// is required).
type RefusedError struct {
	// Host is the host name or literal as the request named it, without port.
	Host string
	// Addr is the refused address (for a name, the resolved one); invalid for rule refusals.
	Addr netip.Addr
	// Reason says why, for operator logs ("a private address").
	Reason string
	// Resolved is true when Addr came from DNS: then the tenant is not told it, since it may
	// be an internal address of the operator's network.
	Resolved bool

	tenant string // the tenant-safe sentence after "HOST: ", or "" for "could not connect to HOST"
}

// Error returns the operator's detail.
func (e *RefusedError) Error() string {
	switch {
	case !e.Addr.IsValid():
		return e.Host + ": " + e.Reason
	case e.Resolved:
		return e.Host + " resolves to " + e.Addr.String() + ", " + e.Reason + "; " + ErrRefused.Error() + " (" + AllowEnv + ")"
	case e.Host != e.Addr.String():
		return e.Host + " (" + e.Addr.String() + ") is " + e.Reason + "; " + ErrRefused.Error() + " (" + AllowEnv + ")"
	}
	return e.Host + " is " + e.Reason + "; " + ErrRefused.Error() + " (" + AllowEnv + ")"
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func refusedAddr(host string, a netip.Addr, reason string, resolved bool) *RefusedError {
	e := &RefusedError{Host: host, Addr: a, Reason: reason, Resolved: resolved}
	if !resolved {
		e.tenant = "address refused by the outbound policy"
	}
	return e
}

// ConnectError is any failure of a request through the guard before a response arrived, or
// while its body was read: refused by the policy, DNS failure, refused or reset connection,
// timeout, TLS failure, or an answer that is not HTTP. Error() keeps the detail for operator
// logs; TenantMessage gives the text a tenant may see.
type ConnectError struct {
	// Host is the URL's host as the tenant wrote it (with port, if any).
	Host string
	// Err is what happened, for operators.
	Err error
}

// Error returns the operator's detail.
func (e *ConnectError) Error() string { return "outbound request to " + e.Host + ": " + e.Err.Error() }

// Timeout reports whether the request failed for lack of time (net.Error's method, so that
// url.Error.Timeout works through it): for the retry logic and operator logs, never for tenants.
func (e *ConnectError) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || errors.As(e.Err, &ne) && ne.Timeout()
}

// Unwrap returns the cause.
func (e *ConnectError) Unwrap() error { return e.Err }

// TenantMessage returns the text a tenant may see; see the function TenantMessage.
func (e *ConnectError) TenantMessage() string { return TenantMessage(e) }

// TenantMessage turns any error of a request made through the guard (from Client().Do,
// RoundTripper().RoundTrip, DialContext or a response body read) into a sentence safe to show
// the tenant: "could not connect to HOST", or "HOST: address refused by the outbound policy"
// when the tenant wrote a refused address itself. Closed ports, services that do not speak
// HTTP, resets, TLS failures, DNS failures and timeouts all read the same, so tenants cannot
// use targets to map the operator's network; log err.Error() for the detail.
func TenantMessage(err error) string {
	if err == nil {
		return ""
	}
	host := ""
	var ce *ConnectError
	if errors.As(err, &ce) {
		host = ce.Host
	}
	var ue *url.Error
	if host == "" && errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
	}
	var re *RefusedError
	if errors.As(err, &re) {
		if host == "" {
			host = re.Host
		}
		if re.tenant != "" {
			return host + ": " + re.tenant
		}
	}
	if host == "" {
		return "could not connect"
	}
	return "could not connect to " + host
}
