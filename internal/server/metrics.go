package server

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-hub/switchboard/internal/auth"
)

// methodLabel is the request method as a metric label: one of the methods the API serves, or
// OTHER, so that made-up methods cannot create series without bound.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// publicGatherer is the registry without the series labelled by tenant: anyone may read process
// and HTTP figures, but which tenants exist and how busy each is is the operator's to know.
type publicGatherer struct{ g prometheus.Gatherer }

func (p publicGatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := p.g.Gather()
	out := fams[:0]
	for _, f := range fams {
		kept := f.Metric[:0]
		for _, m := range f.Metric {
			if !hasTenantLabel(m) {
				kept = append(kept, m)
			}
		}
		if len(kept) > 0 {
			f.Metric = kept
			out = append(out, f)
		}
	}
	return out, err
}

func hasTenantLabel(m *dto.Metric) bool {
	for _, l := range m.Label {
		if l.GetName() == "tenant_id" {
			return true
		}
	}
	return false
}

// MetricsHandler serves every series, tenant-level ones included: for the operator's own
// listener (SWITCHBOARD_METRICS_ADDR), which must not face the internet.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.Registry, metricsOpts)
}

// metricsOpts serve what can be gathered when a collector fails: the gauges read from the
// database (outbox, inbox) fail when it does, which is when the HTTP and process series are
// needed most.
var metricsOpts = promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}

// metrics answers GET /metrics: series labelled by tenant only to a request with a valid
// operator token, the rest to anyone.
func (s *Server) metricsRoute() gin.HandlerFunc {
	full := s.MetricsHandler()
	public := promhttp.HandlerFor(publicGatherer{s.Registry}, metricsOpts)
	return func(c *gin.Context) {
		if s.isOperator(c.Request) {
			full.ServeHTTP(c.Writer, c.Request)
			return
		}
		public.ServeHTTP(c.Writer, c.Request)
	}
}

// isOperator reports whether r carries a valid operator token.
func (s *Server) isOperator(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	c, err := s.Tokens.Verify(strings.TrimSpace(token))
	return err == nil && c.Role == auth.RoleOperator
}
