package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/source"
)

// wireSources builds direction A: the SparkPost inbox processor and the Segment outbox engine.
func wireSources(d *deps) (server.SourceConfig, []worker, error) {
	sender := delivery.NewSegmentSender(d.DB, d.Box, d.Log)
	engine := delivery.NewEngine(d.DB, sender, delivery.Options{
		Target:  delivery.TargetSegment,
		Observe: d.DeliveryMetrics.Observer(delivery.TargetSegment),
	}, d.Log)
	d.Engines[delivery.TargetSegment] = engine

	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_sparkpost_events_total",
		Help: "SparkPost events by tenant and stage: received (in processed batches), stored (new to the store), queued (for Segment).",
	}, []string{"tenant_id", "stage"})
	d.Registry.MustRegister(events)

	proc := source.NewProcessor(d.DB, d.Log)
	proc.Notify = engine.Notify
	proc.Observe = func(tenantID string, received, stored, queued int) {
		events.WithLabelValues(tenantID, "received").Add(float64(received))
		events.WithLabelValues(tenantID, "stored").Add(float64(stored))
		events.WithLabelValues(tenantID, "queued").Add(float64(queued))
	}
	return server.SourceConfig{BatchCommitted: proc.Wake}, []worker{proc, segmentWorker{engine, sender}}, nil
}

// segmentWorker closes the analytics-go clients after the engine stopped using them.
type segmentWorker struct {
	*delivery.Engine
	sender *delivery.SegmentSender
}

func (w segmentWorker) Close(ctx context.Context) error {
	err := w.Engine.Close(ctx)
	w.sender.Close(ctx)
	return err
}
