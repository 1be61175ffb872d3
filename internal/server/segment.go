package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
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
	st, err := s.DB.TenantOutboxStat(c.Request.Context(), k.TenantID, domain.TargetSegment)
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
	var in delivery.SegmentKeyInput
	if !s.decode(c, &in) {
		return
	}
	k, err := in.Key(tenantOf(c).ID, s.SegmentEndpoint, s.Outbound, s.Box)
	if err != nil {
		s.fail(c, err)
		return
	}
	saved, err := s.DB.PutSegmentKey(c.Request.Context(), k)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.Wake(domain.TargetSegment, k.TenantID)
	s.answerSegment(c, saved)
}

func (s *Server) getSegment(c *gin.Context) {
	k, err := s.DB.SegmentKey(c.Request.Context(), tenantOf(c).ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerSegment(c, k)
}
