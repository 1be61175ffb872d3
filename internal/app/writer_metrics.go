package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// writerCollector exposes the store's one writer: how busy each lane kept it and what it
// carried. A writer busy close to one second per second is the limit of everything that writes
// (hook acks, processing, delivery marks); rate(busy_seconds) by lane says who holds it.
type writerCollector struct{ db *store.DB }

var (
	writerBusy = prometheus.NewDesc("switchboard_store_writer_busy_seconds_total",
		"Time the database writer spent in transactions (commits included), by lane: foreground (hook acks, admin changes, claims) or background (processing, retention).", []string{"lane"}, nil)
	writerTxs = prometheus.NewDesc("switchboard_store_writer_transactions_total",
		"Transactions the database writer committed or rolled back, by lane.", []string{"lane"}, nil)
	writerWrites = prometheus.NewDesc("switchboard_store_writer_writes_total",
		"Writes the database writer carried (several share a foreground transaction), by lane.", []string{"lane"}, nil)
	writerWaiting = prometheus.NewDesc("switchboard_store_writer_waiting_writes",
		"Writes handed to the database writer and not yet taken, by lane.", []string{"lane"}, nil)
)

func (c writerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{writerBusy, writerTxs, writerWrites, writerWaiting} {
		ch <- d
	}
}

func (c writerCollector) Collect(ch chan<- prometheus.Metric) {
	fore, back := c.db.WriterStats()
	for _, l := range []struct {
		name string
		s    store.LaneStats
	}{{"foreground", fore}, {"background", back}} {
		ch <- prometheus.MustNewConstMetric(writerBusy, prometheus.CounterValue, l.s.Busy.Seconds(), l.name)
		ch <- prometheus.MustNewConstMetric(writerTxs, prometheus.CounterValue, float64(l.s.Transactions), l.name)
		ch <- prometheus.MustNewConstMetric(writerWrites, prometheus.CounterValue, float64(l.s.Writes), l.name)
		ch <- prometheus.MustNewConstMetric(writerWaiting, prometheus.GaugeValue, float64(l.s.Waiting), l.name)
	}
}
