package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
	"github.com/switchboard-hub/switchboard/internal/web"
)

// Keys under which middleware leaves values on the gin context.
const (
	ctxClaims = "sb.claims"
	ctxTenant = "sb.tenant"
	// ctxLogTenant is the tenant id a hook found through its source or destination (hooks have
	// no :tid and no tenantScope); only the request log line reads it.
	ctxLogTenant = "sb.log_tenant"
)

// logTenant hands the tenant a hook resolved to the request's log line. Call it once the
// source or destination is looked up, before authenticating the caller, so that a rejected
// call is logged with the tenant it was aimed at.
func logTenant(c *gin.Context, tenantID string) { c.Set(ctxLogTenant, tenantID) }

// fail writes err and stops the chain. A database that is closing is 503, so that a sender
// retries instead of counting a shutdown as its own fault. A client that left before the answer
// (its request's context ended) is no server error: nothing was acknowledged, and the request
// line says 499, as nginx does, instead of an ERROR with a 500.
func (s *Server) fail(c *gin.Context, err error) {
	if errors.Is(err, store.ErrClosed) {
		err = domain.Errorf(domain.EUNAVAILABLE, "shutting down; retry shortly")
	}
	if (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && c.Request.Context().Err() != nil {
		c.Status(statusClientClosed)
		c.Abort()
		return
	}
	web.WriteError(c.Writer, c.Request, s.Log, err)
	c.Abort()
}

// statusClientClosed is nginx's "client closed request": shown in logs and metrics only.
const statusClientClosed = 499

// requestID takes a sane X-Request-Id from the caller (so a trace can span systems) or makes one,
// and echoes it on every response.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !saneRequestID(id) {
		id = uuid.NewString()
	}
	c.Header("X-Request-Id", id)
	c.Request = c.Request.WithContext(web.WithRequestID(c.Request.Context(), id))
	c.Next()
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// recovery turns a panic into a logged 500 with the error shape, keeping the process alive.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.Log.Error("panic", "request_id", web.RequestID(c.Request.Context()), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				s.fail(c, fmt.Errorf("panic: %v", p))
			}
			c.Abort()
		}
	}()
	c.Next()
}

// route is the matched route pattern, so that logs and metric labels never carry raw ids.
func route(c *gin.Context) string {
	if p := c.FullPath(); p != "" {
		return p
	}
	return "unmatched"
}

// logRequests writes one JSON line per request. It logs the route pattern rather than the URL,
// and never headers or bodies, so no credential can reach the log. It adds tenant_id when the
// route resolved one (tenantScope on admin routes, logTenant on hooks) and source_id or
// destination_id when the route names one; a path segment that is no well-formed id is left out,
// so that a probe cannot write what it likes into the log.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	attrs := []any{
		"request_id", web.RequestID(c.Request.Context()),
		"method", c.Request.Method,
		"route", route(c),
		"status", c.Writer.Status(),
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
		"bytes", c.Writer.Size(),
	}
	if t, ok := c.Get(ctxTenant); ok {
		attrs = append(attrs, "tenant_id", t.(*store.Tenant).ID)
	} else if id := c.GetString(ctxLogTenant); id != "" {
		attrs = append(attrs, "tenant_id", id)
	}
	if id := c.Param("sid"); domain.ValidID("src_", id) {
		attrs = append(attrs, "source_id", id)
	}
	if id := c.Param("did"); domain.ValidID(destinationPrefix, id) {
		attrs = append(attrs, "destination_id", id)
	}
	s.Log.Info("request", attrs...)
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_http_request_duration_seconds", Help: "HTTP request latency by route, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (s *Server) measure(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := strconv.Itoa(c.Writer.Status())
	r := route(c)
	m := methodLabel(c.Request.Method)
	s.metrics.requests.WithLabelValues(r, m, status).Inc()
	s.metrics.latency.WithLabelValues(r, m, status).Observe(time.Since(start).Seconds())
}

// authenticate requires a valid bearer JWT and leaves its claims on the context.
func (s *Server) authenticate(c *gin.Context) {
	if s.throttled(c, "") {
		return
	}
	h := c.GetHeader("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		s.fail(c, domain.Errorf(domain.EUNAUTHORIZED, "missing Authorization header; send Authorization: Bearer <token>"))
		return
	} else if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		s.fail(c, domain.Errorf(domain.EUNAUTHORIZED, "Authorization header must be: Bearer <token>"))
		return
	}
	claims, err := s.Tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		s.authFailed(c, "", err)
		return
	}
	c.Set(ctxClaims, claims)
	c.Next()
}

func claimsOf(c *gin.Context) *auth.Claims { return c.MustGet(ctxClaims).(*auth.Claims) }

// operatorOnly refuses tenant tokens with 403.
func (s *Server) operatorOnly(c *gin.Context) {
	if claimsOf(c).Role != auth.RoleOperator {
		s.fail(c, domain.Errorf(domain.EFORBIDDEN, "this route needs an operator token"))
		return
	}
	c.Next()
}

// tenantScope loads the tenant named by :tid. A tenant token reaches only its own tenant: any
// other id answers 404 exactly as a missing tenant does, so ids cannot be probed. A tenant token of
// an older generation (revoked) or of a deleted tenant is 401.
func (s *Server) tenantScope(c *gin.Context) {
	claims := claimsOf(c)
	tid := c.Param("tid")
	if claims.Role == auth.RoleTenant && !auth.Equal(claims.TenantID, tid) {
		s.fail(c, domain.Errorf(domain.ENOTFOUND, "tenant not found"))
		return
	}
	t, err := s.DB.Tenant(c.Request.Context(), tid)
	if domain.ErrorCode(err) == domain.ENOTFOUND && claims.Role == auth.RoleTenant {
		s.fail(c, domain.Errorf(domain.EUNAUTHORIZED, "token has been revoked"))
		return
	} else if err != nil {
		s.fail(c, err)
		return
	}
	if claims.Role == auth.RoleTenant && claims.Gen != t.TokenGen {
		s.fail(c, domain.Errorf(domain.EUNAUTHORIZED, "token has been revoked"))
		return
	}
	c.Set(ctxTenant, t)
	c.Next()
}

func tenantOf(c *gin.Context) *store.Tenant { return c.MustGet(ctxTenant).(*store.Tenant) }
