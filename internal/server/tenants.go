package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
	"github.com/switchboard-hub/switchboard/internal/web"
)

// decode reads the request's JSON body into dst, answering 4xx itself on failure.
func (s *Server) decode(c *gin.Context, dst any) bool {
	if err := web.DecodeJSON(c.Writer, c.Request, s.BodyLimit, dst); err != nil {
		s.fail(c, err)
		return false
	}
	return true
}

type tenantBody struct {
	Name *string `json:"name"`
}

func (s *Server) createTenant(c *gin.Context) {
	var in tenantBody
	if !s.decode(c, &in) {
		return
	}
	name, err := domain.CheckName("name", in.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.DB.CreateTenant(c.Request.Context(), name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusCreated, t)
}

func (s *Server) listTenants(c *gin.Context) {
	p, err := pageOf(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ts, total, err := s.DB.Tenants(c.Request.Context(), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	body := ListBody{Results: ts, TotalCount: total}
	if ts == nil {
		body.Results = []*store.Tenant{}
	} else {
		last := ts[len(ts)-1]
		body.Links.Next = nextLink(c, p, len(ts), last.CreatedAt, last.ID)
	}
	c.PureJSON(http.StatusOK, body)
}

func (s *Server) getTenant(c *gin.Context) { c.PureJSON(http.StatusOK, tenantOf(c)) }

func (s *Server) renameTenant(c *gin.Context) {
	var in tenantBody
	if !s.decode(c, &in) {
		return
	}
	name, err := domain.CheckName("name", in.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.DB.RenameTenant(c.Request.Context(), tenantOf(c).ID, name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, t)
}

func (s *Server) deleteTenant(c *gin.Context) {
	if err := s.DB.DeleteTenant(c.Request.Context(), tenantOf(c).ID); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// maxTokenTTL bounds tenant tokens; a leaked token should not live for years.
const maxTokenTTL = 366 * 24 * time.Hour

// parseTTL reads a Go duration string for field, defaulting to def.
func parseTTL(field string, v *string, def time.Duration) (time.Duration, error) {
	if v == nil || *v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(*v)
	if err != nil {
		return 0, domain.Errorf(domain.EINVALID, "%s: %q is not a duration such as \"24h\" or \"90m\"", field, *v)
	}
	if d < auth.MinTTL || d > maxTokenTTL {
		return 0, domain.Errorf(domain.EINVALID, "%s: must be from %s to %s", field, auth.MinTTL, maxTokenTTL)
	}
	return d, nil
}

func (s *Server) createTenantToken(c *gin.Context) {
	var in struct {
		TTL *string `json:"ttl"`
	}
	// The body is optional: an empty POST mints a token with the default lifetime.
	if c.Request.ContentLength != 0 && !s.decode(c, &in) {
		return
	}
	ttl, err := parseTTL("ttl", in.TTL, 24*time.Hour)
	if err != nil {
		s.fail(c, err)
		return
	}
	t := tenantOf(c)
	token, exp, err := s.Tokens.Tenant(t.ID, t.TokenGen, ttl)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusCreated, gin.H{"token": token, "expires_at": exp})
}

func (s *Server) revokeTenantTokens(c *gin.Context) {
	if _, err := s.DB.BumpTokenGen(c.Request.Context(), tenantOf(c).ID); err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"revoked": true})
}
