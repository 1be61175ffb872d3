package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
	"github.com/switchboard-hub/switchboard/internal/store"
	"github.com/switchboard-hub/switchboard/internal/worker"
)

// wireSources builds direction A: the inbox processor of every provider, the Segment outbox
// engine, the back-fill runner and the event store's upkeep.
func (a *App) wireSources(cfg *server.Config, metrics *delivery.Metrics, opt Options) error {
	log := cfg.Log
	sender := delivery.NewSegmentSender(cfg.DB, cfg.Box, cfg.Outbound, log)
	engine := delivery.NewEngine(cfg.DB, sender, opt.engineOptions(delivery.Options{
		Target:  domain.TargetSegment,
		Observe: metrics.Observer(domain.TargetSegment),
	}), log)
	a.Engines[domain.TargetSegment] = engine

	// The series keeps its first name; it counts every provider's events.
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_sparkpost_events_total",
		Help: "Email provider events (SparkPost and SendGrid) by tenant and stage: received (in processed batches), stored (new to the store), queued (for Segment).",
	}, []string{"tenant_id", "stage"})
	if err := cfg.Registry.Register(events); err != nil {
		return err
	}
	if err := cfg.Registry.Register(source.NewInboxCollector(cfg.DB)); err != nil {
		return err
	}

	proc := source.NewProcessor(cfg.DB, log)
	proc.Notify = engine.Notify
	proc.Observe = func(tenantID string, received, stored, queued int) {
		events.WithLabelValues(tenantID, "received").Add(float64(received))
		events.WithLabelValues(tenantID, "stored").Add(float64(stored))
		events.WithLabelValues(tenantID, "queued").Add(float64(queued))
	}
	backfills := sparkpost.NewBackfillRunner(cfg.DB, cfg.Outbound, log.With("worker", "backfill"))
	backfills.Wake = proc.Wake
	a.Processor, a.Backfill = proc, backfills
	rollup, retention := eventStoreLoops(cfg.DB, log.With("worker", "event_store"))
	a.workers = append(a.workers, proc, segmentWorker{engine, sender}, backfills, rollup, retention)
	cfg.Sources.BatchCommitted, cfg.Sources.Backfill = proc.Wake, backfills
	return nil
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
