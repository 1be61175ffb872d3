package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// retentionBody is the answer and the PUT body of …/retention.
type retentionBody struct {
	RetentionDays *int `json:"retention_days"`
}

// getRetention answers GET …/retention: how many days the tenant's events are kept.
func (s *Server) getRetention(c *gin.Context) {
	days, err := s.DB.RetentionDays(c.Request.Context(), tenantOf(c).ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, retentionBody{RetentionDays: &days})
}

// putRetention answers PUT …/retention {retention_days}: events (and the raw batches they came
// in) older than that are pruned within the hour.
func (s *Server) putRetention(c *gin.Context) {
	var in retentionBody
	if !s.decode(c, &in) {
		return
	}
	if in.RetentionDays == nil {
		s.fail(c, domain.Errorf(domain.EINVALID, "retention_days: is required"))
		return
	}
	if err := s.DB.SetRetentionDays(c.Request.Context(), tenantOf(c).ID, *in.RetentionDays); err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, in)
}
