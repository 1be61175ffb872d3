package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsLabelsAndVisibility: made-up HTTP methods do not create series; series labelled
// by tenant are shown to an operator token only.
func TestMetricsLabelsAndVisibility(t *testing.T) {
	app := NewTestApp(t)
	perTenant := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_per_tenant_total", Help: "x"}, []string{"tenant_id"})
	app.Server.Registry.MustRegister(perTenant)
	perTenant.WithLabelValues("ten_secretcustomer00").Inc()
	for i := range 200 {
		app.Do(fmt.Sprintf("BREW%d", i), "/api/v1/tenants", "", nil)
	}
	status, body, _ := app.Do("GET", "/metrics", "", nil)
	text := string(body)
	if status != 200 || strings.Contains(text, "BREW") || !strings.Contains(text, `method="OTHER"`) {
		t.Fatalf("metrics after made-up methods: %d, BREW in it: %v", status, strings.Contains(text, "BREW"))
	}
	if strings.Contains(text, "tenant_id") || strings.Contains(text, "ten_secretcustomer00") {
		t.Fatal("anonymous /metrics shows tenant-level series")
	}
	if !strings.Contains(text, "switchboard_http_requests_total") {
		t.Fatal("anonymous /metrics lacks the HTTP series")
	}
	_, body, _ = app.Do("GET", "/metrics", app.OperatorToken(), nil)
	if !strings.Contains(string(body), `test_per_tenant_total{tenant_id="ten_secretcustomer00"} 1`) {
		t.Fatal("operator /metrics lacks the tenant-level series")
	}
	_, body, _ = app.Do("GET", "/metrics", app.TenantToken(app.Tenant("A")), nil)
	if strings.Contains(string(body), "ten_secretcustomer00") {
		t.Fatal("a tenant token sees other tenants' series")
	}
}

// failingCollector stands for a gauge read from a database that is down.
type failingCollector struct{ desc *prometheus.Desc }

func (c failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("database is gone"))
}

// TestMetricsSurviveAFailingCollector: a gauge that cannot be read (the database is down)
// leaves the other series served, to the operator and to anyone.
func TestMetricsSurviveAFailingCollector(t *testing.T) {
	app := NewTestApp(t)
	app.Server.Registry.MustRegister(failingCollector{prometheus.NewDesc("test_db_gauge", "x", nil, nil)})
	app.Do("GET", "/healthz", "", nil)
	for _, token := range []string{"", app.OperatorToken()} {
		status, body, _ := app.Do("GET", "/metrics", token, nil)
		if status != 200 || !strings.Contains(string(body), "switchboard_http_requests_total") {
			t.Fatalf("/metrics (operator %v) with a failing collector: %d, HTTP series there: %v", token != "", status,
				strings.Contains(string(body), "switchboard_http_requests_total"))
		}
	}
}
