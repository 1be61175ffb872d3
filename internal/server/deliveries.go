package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// deliveryOut is a delivery as the API shows it, with the message it carries.
type deliveryOut struct {
	*store.Delivery
	Payload     json.RawMessage `json:"payload"`
	DeliveredAt *time.Time      `json:"delivered_at"`
}

func (s *Server) listDeliveries(c *gin.Context) {
	f := store.DeliveryFilter{TenantID: tenantOf(c).ID, Target: c.Query("target"), Status: c.Query("status"), Limit: defaultLimit}
	if f.Target != "" && !slices.Contains(domain.Targets, f.Target) {
		s.fail(c, domain.Errorf(domain.EINVALID, "target: must be %s", strings.Join(domain.Targets, " or ")))
		return
	}
	if f.Status != "" && !slices.Contains(domain.Statuses, f.Status) {
		s.fail(c, domain.Errorf(domain.EINVALID, "status: must be one of %s", strings.Join(domain.Statuses, ", ")))
		return
	}
	if f.Status == domain.StatusWaitingForUser {
		f.Status, f.Reason = domain.StatusPending, domain.ReasonWaitingForUser
	}
	p, err := pageOf(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	f.Limit = p.Limit
	if f.BeforeID, err = afterRow(p); err != nil {
		s.fail(c, err)
		return
	}
	ds, total, err := s.DB.Deliveries(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]deliveryOut, len(ds))
	for i, d := range ds {
		if d.Status == domain.StatusPending && d.Reason == domain.ReasonWaitingForUser {
			d.Status = domain.StatusWaitingForUser
		}
		out[i] = deliveryOut{Delivery: d, Payload: d.Payload}
		if !d.DeliveredAt.IsZero() {
			out[i].DeliveredAt = &ds[i].DeliveredAt
		}
	}
	body := ListBody{Results: out, TotalCount: total}
	if n := len(ds); n > 0 {
		body.Links.Next = nextLink(c, p, n, time.Time{}, strconv.FormatInt(ds[n-1].ID, 10))
	}
	c.PureJSON(http.StatusOK, body)
}

func (s *Server) retryDeliveries(c *gin.Context) {
	var in struct {
		Status *string `json:"status"`
		Target *string `json:"target"`
		From   *string `json:"from"`
		To     *string `json:"to"`
	}
	if !s.decode(c, &in) {
		return
	}
	f := store.DeliveryFilter{TenantID: tenantOf(c).ID}
	switch {
	case in.Status == nil:
		s.fail(c, domain.Errorf(domain.EINVALID, "status: is required (dead or failed)"))
		return
	case *in.Status != domain.StatusDead && *in.Status != domain.StatusFailed:
		s.fail(c, domain.Errorf(domain.EINVALID, "status: must be dead (re-queue dead deliveries) or failed (send deliveries waiting after a failed attempt now)"))
		return
	}
	f.Status = *in.Status
	if in.Target != nil {
		if !slices.Contains(domain.Targets, *in.Target) {
			s.fail(c, domain.Errorf(domain.EINVALID, "target: must be %s", strings.Join(domain.Targets, " or ")))
			return
		}
		f.Target = *in.Target
	}
	var err error
	if in.From != nil {
		if f.From, err = domain.ParseTime("from", *in.From, time.UTC); err != nil {
			s.fail(c, err)
			return
		}
	}
	if in.To != nil {
		if f.To, err = domain.ParseTime("to", *in.To, time.UTC); err != nil {
			s.fail(c, err)
			return
		}
	}
	if f.Target == "" || f.Target == domain.TargetSegment {
		// A retry asked for is also the word to try a write key Segment rejected once more.
		if err := s.DB.ResumeSegmentKey(c.Request.Context(), f.TenantID); err != nil {
			s.fail(c, err)
			return
		}
	}
	n, err := s.DB.RetryDeliveries(c.Request.Context(), f, delivery.MaxAge)
	if err != nil {
		s.fail(c, err)
		return
	}
	for _, t := range domain.Targets {
		if f.Target == "" || f.Target == t {
			s.Wake(t, f.TenantID)
		}
	}
	c.PureJSON(http.StatusOK, gin.H{"requeued": n})
}
