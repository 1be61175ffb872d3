package outbound

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// CheckURL validates a tenant-chosen target URL when it is created or updated, so that a bad
// one is a 400 naming field instead of a delivery that fails for days. It requires an
// absolute http:// or https:// URL with a host, no user name or password and a valid port,
// and refuses a host that is, in any spelling ("127.1", "2130706433", "[::ffff:7f00:1]"), an
// address the guard refuses, or "localhost" unless loopback is allowed. Names are not
// resolved here: DialContext checks what they resolve to at every connection. Errors are
// domain.EINVALID.
func (g *Guard) CheckURL(field, raw string) error {
	return g.orDefault().checkURL(field, raw, false)
}

// CheckSecureURL is CheckURL that also requires https:// unless the host is a literal address
// in the allow-list (or "localhost" with loopback allowed): for Segment endpoints.
func (g *Guard) CheckSecureURL(field, raw string) error {
	return g.orDefault().checkURL(field, raw, true)
}

const refusedTail = "; targets on private networks are refused unless the operator allows them with " + AllowEnv

func (g *Guard) checkURL(field, raw string, https bool) error {
	if raw == "" {
		return domain.Errorf(domain.EINVALID, "%s: must be an http:// or https:// URL", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return domain.Errorf(domain.EINVALID, "%s: is not a valid URL", field)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return domain.Errorf(domain.EINVALID, "%s: must be an http:// or https:// URL", field)
	}
	if u.Opaque != "" || u.Host == "" {
		return domain.Errorf(domain.EINVALID, "%s: must be an absolute URL with a host, like https://example.com/hook", field)
	}
	if u.User != nil {
		return domain.Errorf(domain.EINVALID, "%s: must not contain a user name or password", field)
	}
	host := u.Hostname()
	if host == "" {
		return domain.Errorf(domain.EINVALID, "%s: must be an absolute URL with a host, like https://example.com/hook", field)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return domain.Errorf(domain.EINVALID, "%s: port %s is out of range (1-65535)", field, p)
		}
	}
	a, kind, err := parseHost(host)
	if err != nil {
		return domain.Errorf(domain.EINVALID, "%s: host %s %s", field, host, err)
	}
	switch kind {
	case hostName:
		if strings.HasPrefix(u.Host, "[") {
			return domain.Errorf(domain.EINVALID, "%s: host %s is not a valid IPv6 address", field, host)
		}
	case hostIP:
		if ok, reason := g.Decide(a); !ok {
			canon := a.WithZone("").Unmap().String()
			if canon == host {
				return domain.Errorf(domain.EINVALID, "%s: %s is %s%s", field, host, reason, refusedTail)
			}
			return domain.Errorf(domain.EINVALID, "%s: %s (%s) is %s%s", field, host, canon, reason, refusedTail)
		}
	case hostLocalhost:
		if !g.localhostAllowed() {
			return domain.Errorf(domain.EINVALID, "%s: %s is %s%s", field, host, reasonLoopback, refusedTail)
		}
	}
	if https && u.Scheme == "http" && !g.plainHTTPAllowed(host) {
		return domain.Errorf(domain.EINVALID,
			"%s: must be an https:// URL; plain http:// is accepted only for addresses the operator lists in %s", field, AllowEnv)
	}
	return nil
}
