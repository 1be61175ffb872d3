package delivery

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// Metrics counts what the engines did, per target and tenant.
type Metrics struct {
	results *prometheus.CounterVec
}

// NewMetrics registers the delivery counters and the outbox collector on reg.
func NewMetrics(reg prometheus.Registerer, db OutboxStats) *Metrics {
	m := &Metrics{results: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_deliveries_total",
		Help: "Finished delivery attempts by target, tenant and result (delivered, failed, dead).",
	}, []string{"target", "tenant_id", "result"})}
	reg.MustRegister(m.results, &outboxCollector{db: db})
	return m
}

// Observer returns an Options.Observe for target.
func (m *Metrics) Observer(target string) func(tenantID string, delivered, failed, dead int) {
	return func(tenantID string, delivered, failed, dead int) {
		m.results.WithLabelValues(target, tenantID, "delivered").Add(float64(delivered))
		m.results.WithLabelValues(target, tenantID, "failed").Add(float64(failed))
		m.results.WithLabelValues(target, tenantID, "dead").Add(float64(dead))
	}
}

// OutboxStats is what the outbox gauges need of a store: each tenant's and target's backlog.
type OutboxStats interface {
	OutboxStats(ctx context.Context) ([]store.OutboxStat, error)
}

// outboxCollector reports the outbox depth and the age of the oldest undelivered row per
// tenant, read from the database at scrape time so that it is right after a restart too.
type outboxCollector struct{ db OutboxStats }

var (
	outboxDepth = prometheus.NewDesc("switchboard_outbox_pending", "Deliveries waiting to be sent, by target and tenant.",
		[]string{"target", "tenant_id"}, nil)
	outboxAge = prometheus.NewDesc("switchboard_outbox_oldest_pending_age_seconds", "Age of the oldest delivery waiting to be sent, by target and tenant.",
		[]string{"target", "tenant_id"}, nil)
	outboxTimeToDead = prometheus.NewDesc("switchboard_outbox_seconds_until_dead",
		"Time left before the first undelivered delivery would turn dead (time to data loss), by target and tenant.",
		[]string{"target", "tenant_id"}, nil)
)

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxDepth
	ch <- outboxAge
	ch <- outboxTimeToDead
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stats, err := c.db.OutboxStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(outboxDepth, err)
		return
	}
	for _, s := range stats {
		ch <- prometheus.MustNewConstMetric(outboxDepth, prometheus.GaugeValue, float64(s.Pending), s.Target, s.TenantID)
		ch <- prometheus.MustNewConstMetric(outboxAge, prometheus.GaugeValue, time.Since(s.OldestCreated).Seconds(), s.Target, s.TenantID)
		ch <- prometheus.MustNewConstMetric(outboxTimeToDead, prometheus.GaugeValue, max(time.Until(s.FirstExpiry).Seconds(), 0), s.Target, s.TenantID)
	}
}
