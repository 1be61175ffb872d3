package server

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/api"
	"github.com/switchboard-hub/switchboard/internal/domain"
)

func (s *Server) routes() *gin.Engine {
	r := gin.New()
	// The client address (failed-auth throttling) is the connection's: X-Forwarded-For is
	// anyone's to write.
	_ = r.SetTrustedProxies(nil)
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	r.Use(s.requestID, s.logRequests, s.measure, s.recovery)
	r.NoRoute(func(c *gin.Context) {
		s.fail(c, domain.Errorf(domain.ENOTFOUND, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		s.fail(c, domain.Errorf(domain.EMETHOD, "method %s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})

	r.GET("/healthz", func(c *gin.Context) { c.PureJSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", s.metricsRoute())
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", api.OpenAPI) })

	v1 := r.Group("/api/v1", s.authenticate)
	v1.POST("/tenants", s.operatorOnly, s.createTenant)
	v1.GET("/tenants", s.operatorOnly, s.listTenants)

	t := v1.Group("/tenants/:tid", s.tenantScope)
	t.GET("", s.getTenant)
	t.PATCH("", s.operatorOnly, s.renameTenant)
	t.DELETE("", s.operatorOnly, s.deleteTenant)
	t.POST("/tokens", s.operatorOnly, s.createTenantToken)
	t.POST("/tokens/revoke", s.revokeTenantTokens)
	t.PUT("/segment", s.putSegment)
	t.GET("/segment", s.getSegment)

	// The outbox of both directions.
	t.GET("/deliveries", s.listDeliveries)
	t.POST("/deliveries/retry", s.retryDeliveries)

	s.sourceRoutes(r, t)
	s.destinationRoutes(r, t)
	return r
}

// readyz answers 200 when the database answers and every worker reports healthy.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	checks := append([]func(context.Context) error{s.DB.Ping}, s.Ready...)
	for _, check := range checks {
		if err := check(ctx); err != nil {
			s.Log.Warn("not ready", "error", err.Error())
			s.fail(c, domain.Errorf(domain.EUNAVAILABLE, "not ready: %v", err))
			return
		}
	}
	c.PureJSON(http.StatusOK, gin.H{"status": "ready"})
}
