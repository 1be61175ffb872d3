package server

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/delivery"
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

// segmentOut is what GET/PUT …/segment answer: never the key, only its hint; the lane's
// status (write_key_rejected once Segment refused the key, and since when); and the tenant's
// undelivered Segment deliveries: the oldest one's age and the time left before it would turn
// dead (a time-to-data-loss an operator can alert on).
type segmentOut struct {
	WriteKeyHint         string     `json:"write_key_hint"`
	Endpoint             string     `json:"endpoint"`
	MaxRequestsPerSecond int        `json:"max_requests_per_second"`
	UpdatedAt            time.Time  `json:"updated_at"`
	Status               string     `json:"status"`
	StatusSince          *time.Time `json:"status_since"`
	StatusReason         *string    `json:"status_reason"`
	Undelivered          int        `json:"undelivered"`
	OldestUndeliveredAt  *time.Time `json:"oldest_undelivered_at"`
	OldestUndeliveredAge float64    `json:"oldest_undelivered_age_seconds"`
	SecondsUntilDead     *float64   `json:"seconds_until_dead"`
}

func (s *Server) segmentBody(c *gin.Context, k *store.SegmentKey) (segmentOut, error) {
	out := segmentOut{WriteKeyHint: k.Hint, Endpoint: k.Endpoint, MaxRequestsPerSecond: k.MaxRPS, UpdatedAt: k.UpdatedAt,
		Status: k.Status}
	if !k.StatusSince.IsZero() {
		out.StatusSince, out.StatusReason = &k.StatusSince, &k.StatusReason
	}
	st, err := s.DB.TenantOutboxStat(c.Request.Context(), k.TenantID, delivery.TargetSegment)
	if err != nil {
		return out, err
	}
	if out.Undelivered = st.Pending; st.Pending > 0 {
		now := s.DB.Now()
		out.OldestUndeliveredAt = &st.OldestCreated
		out.OldestUndeliveredAge = max(now.Sub(st.OldestCreated).Seconds(), 0)
		left := max(st.FirstExpiry.Sub(now).Seconds(), 0)
		out.SecondsUntilDead = &left
	}
	return out, nil
}

// answerSegment writes a tenant's Segment settings and lane state.
func (s *Server) answerSegment(c *gin.Context, k *store.SegmentKey) {
	out, err := s.segmentBody(c, k)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, out)
}

func (s *Server) putSegment(c *gin.Context) {
	var in struct {
		WriteKey *string `json:"write_key"`
		Endpoint *string `json:"endpoint"`
		MaxRPS   *int    `json:"max_requests_per_second"`
	}
	if !s.decode(c, &in) {
		return
	}
	k := store.SegmentKey{TenantID: tenantOf(c).ID, Endpoint: s.SegmentEndpoint, MaxRPS: DefaultSegmentRPS}
	switch {
	case in.WriteKey == nil:
		s.fail(c, domain.Errorf(domain.EINVALID, "write_key: is required"))
		return
	case strings.TrimSpace(*in.WriteKey) == "":
		s.fail(c, domain.Errorf(domain.EINVALID, "write_key: must not be empty"))
		return
	case len(*in.WriteKey) > 256 || strings.ContainsFunc(*in.WriteKey, func(r rune) bool { return r <= ' ' || r == ':' || r > '~' }):
		s.fail(c, domain.Errorf(domain.EINVALID, "write_key: must be a Segment write key (printable ASCII, no spaces or colons, at most 256 characters)"))
		return
	}
	if in.Endpoint != nil && *in.Endpoint != "" {
		ep, err := checkEndpoint(*in.Endpoint, s.Outbound)
		if err != nil {
			s.fail(c, err)
			return
		}
		k.Endpoint = ep
	}
	if in.MaxRPS != nil {
		if *in.MaxRPS < 1 || *in.MaxRPS > MaxSegmentRPS {
			s.fail(c, domain.Errorf(domain.EINVALID, "max_requests_per_second: must be from 1 to %d", MaxSegmentRPS))
			return
		}
		k.MaxRPS = *in.MaxRPS
	}
	k.WriteKeyEnc = s.Box.Seal(*in.WriteKey)
	k.Hint = domain.Hint(*in.WriteKey)
	saved, err := s.DB.PutSegmentKey(c.Request.Context(), k)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.Wake(delivery.TargetSegment, k.TenantID)
	s.answerSegment(c, saved)
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

func (s *Server) getSegment(c *gin.Context) {
	k, err := s.DB.SegmentKey(c.Request.Context(), tenantOf(c).ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerSegment(c, k)
}
