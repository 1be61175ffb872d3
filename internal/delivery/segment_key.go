package delivery

import (
	"net/url"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// Request-rate bounds of SPEC §5.3: 50/s by default (Segment's partner guidance), up to the
// workspace limit of 1,000/s.
const (
	DefaultSegmentRPS = 50
	MaxSegmentRPS     = 1000
)

// SegmentKeyInput is the body of registering a tenant's Segment write key.
type SegmentKeyInput struct {
	WriteKey *string `json:"write_key"`
	Endpoint *string `json:"endpoint"`
	MaxRPS   *int    `json:"max_requests_per_second"`
}

// Key checks the input and returns the key to store: the write key sealed with box, the
// endpoint (defaultEndpoint when none is given) and the request rate. Errors: EINVALID naming
// the field.
func (in *SegmentKeyInput) Key(tenantID, defaultEndpoint string, guard *outbound.Guard, box *auth.Box) (store.SegmentKey, error) {
	k := store.SegmentKey{TenantID: tenantID, Endpoint: defaultEndpoint, MaxRPS: DefaultSegmentRPS}
	switch {
	case in.WriteKey == nil:
		return k, domain.Errorf(domain.EINVALID, "write_key: is required")
	case strings.TrimSpace(*in.WriteKey) == "":
		return k, domain.Errorf(domain.EINVALID, "write_key: must not be empty")
	case len(*in.WriteKey) > 256 || strings.ContainsFunc(*in.WriteKey, func(r rune) bool { return r <= ' ' || r == ':' || r > '~' }):
		return k, domain.Errorf(domain.EINVALID, "write_key: must be a Segment write key (printable ASCII, no spaces or colons, at most 256 characters)")
	}
	if in.Endpoint != nil && *in.Endpoint != "" {
		ep, err := checkEndpoint(*in.Endpoint, guard)
		if err != nil {
			return k, err
		}
		k.Endpoint = ep
	}
	if in.MaxRPS != nil {
		if *in.MaxRPS < 1 || *in.MaxRPS > MaxSegmentRPS {
			return k, domain.Errorf(domain.EINVALID, "max_requests_per_second: must be from 1 to %d", MaxSegmentRPS)
		}
		k.MaxRPS = *in.MaxRPS
	}
	k.WriteKeyEnc = box.Seal(*in.WriteKey)
	k.Hint = domain.Hint(*in.WriteKey)
	return k, nil
}

// checkEndpoint accepts a base URL as analytics-go takes it (scheme and host, optional path):
// https, since the write key travels in it (http only to an address the operator allowed), and
// no literal address the outbound guard refuses.
func checkEndpoint(v string, guard *outbound.Guard) (string, error) {
	u, err := url.Parse(strings.TrimSpace(v))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", domain.Errorf(domain.EINVALID, "endpoint: must be an https base URL such as https://api.segment.io or https://events.eu1.segmentapis.com")
	}
	if err := guard.CheckSecureURL("endpoint", u.String()); err != nil {
		return "", err
	}
	return strings.TrimRight(u.String(), "/"), nil
}
