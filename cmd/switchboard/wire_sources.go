package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
	"github.com/switchboard-hub/switchboard/internal/store"
	"github.com/switchboard-hub/switchboard/internal/worker"
)

// wireSources builds direction A: the inbox processor of every provider, the Segment outbox engine, the
// back-fill runner and the event store's upkeep.
func wireSources(d *deps) (server.SourceConfig, []runner, error) {
	sender := delivery.NewSegmentSender(d.DB, d.Box, d.Outbound, d.Log)
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
	backfills := sparkpost.NewBackfillRunner(d.DB, d.Outbound, d.Log.With("worker", "backfill"))
	backfills.Wake = proc.Wake
	rollup, retention := eventStoreLoops(d.DB, d.Log.With("worker", "event_store"))
	return server.SourceConfig{BatchCommitted: proc.Wake, Backfill: backfills},
		[]runner{proc, segmentWorker{engine, sender}, backfills, rollup, retention}, nil
}

// Intervals of the event store's upkeep.
const (
	rollupEvery = 2 * time.Second
	pruneEvery  = time.Hour
	pruneFirst  = time.Minute // after start-up, once the rest of serve has settled
)

// eventStoreLoops keep the stores in shape: one rolls new events into the hourly counts every
// few seconds (total_count stays cheap), the other applies each tenant's retention every hour —
// to email events and to the raw Segment messages kept for replay — in small writes that never
// hold the writer for long.
func eventStoreLoops(db *store.DB, log *slog.Logger) (rollup, retention *worker.Loop) {
	rollup = &worker.Loop{Name: "event count rollup", Log: log, Poll: rollupEvery,
		Step: func(ctx context.Context) (bool, error) {
			n, err := db.RollupEventCounts(ctx)
			return n > 0, err
		}}
	retention = &worker.Loop{Name: "retention", Log: log, First: pruneFirst, Poll: pruneEvery,
		Step: func(ctx context.Context) (bool, error) {
			p, err := db.PruneExpired(ctx)
			messages, merr := destination.PruneMessages(ctx, db)
			if p.Events+p.Batches+p.Jobs+messages > 0 {
				log.Info("retention applied", "events", p.Events, "deliveries", p.Deliveries, "batches", p.Batches,
					"backfill_jobs", p.Jobs, "segment_messages", messages)
				// Let the freed pages reach the database file, where new rows reuse them.
				if err := db.Checkpoint(ctx); err != nil && ctx.Err() == nil {
					log.Warn("checkpoint after retention", "error", err.Error())
				}
			}
			return false, errors.Join(err, merr)
		}}
	return rollup, retention
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
