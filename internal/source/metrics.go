package source

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// InboxStats is what the inbox gauges need of a store: the batches that wait to be processed.
type InboxStats interface {
	InboxBacklog(ctx context.Context) (batches int64, oldest time.Time, err error)
}

// NewInboxCollector returns the collector of the inbox gauges: how many committed webhook
// batches wait for the processor and how long the oldest has waited, read at scrape time. A
// backlog that grows under steady load means webhooks are acknowledged faster than they are
// processed: the acknowledged rate is then not one the system can sustain.
func NewInboxCollector(db InboxStats) prometheus.Collector { return &inboxCollector{db: db} }

type inboxCollector struct{ db InboxStats }

var (
	inboxBacklog = prometheus.NewDesc("switchboard_inbox_unprocessed_batches",
		"Committed webhook batches waiting to be processed into events.", nil, nil)
	inboxAge = prometheus.NewDesc("switchboard_inbox_oldest_unprocessed_age_seconds",
		"How long the oldest batch waiting to be processed has waited (0 when none waits).", nil, nil)
)

func (c *inboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inboxBacklog
	ch <- inboxAge
}

func (c *inboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, oldest, err := c.db.InboxBacklog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(inboxBacklog, err)
		return
	}
	age := 0.0
	if !oldest.IsZero() {
		age = max(time.Since(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(inboxBacklog, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(inboxAge, prometheus.GaugeValue, age)
}
