package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/backfill"
	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// wireSources builds direction A: the SparkPost inbox processor, the Segment outbox engine, the
// back-fill runner and the event store's upkeep.
func wireSources(d *deps) (server.SourceConfig, []worker, error) {
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
	backfills := backfill.NewRunner(d.DB, d.Outbound, d.Log.With("worker", "backfill"))
	backfills.Wake = proc.Wake
	upkeep := &eventStoreWorker{db: d.DB, log: d.Log.With("worker", "event_store")}
	return server.SourceConfig{BatchCommitted: proc.Wake, Backfill: backfills}, []worker{proc, segmentWorker{engine, sender}, backfills, upkeep}, nil
}

// eventStoreWorker keeps the stores in shape: it rolls new events into the hourly counts every
// few seconds (total_count stays cheap) and applies each tenant's retention every hour — to
// SparkPost events and to the raw Segment messages kept for replay — in small writes that never
// hold the writer for long.
type eventStoreWorker struct {
	db  *store.DB
	log *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	alive  atomic.Bool
}

// Intervals of the event-store worker.
const (
	rollupEvery = 2 * time.Second
	pruneEvery  = time.Hour
	pruneFirst  = time.Minute // after start-up, once the rest of serve has settled
)

func (w *eventStoreWorker) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	w.alive.Store(true)
	go w.loop(ctx)
	return nil
}

func (w *eventStoreWorker) loop(ctx context.Context) {
	defer close(w.done)
	defer w.alive.Store(false)
	rollup := time.NewTicker(rollupEvery)
	defer rollup.Stop()
	prune := time.NewTimer(pruneFirst)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rollup.C:
			for ctx.Err() == nil {
				n, err := w.db.RollupEventCounts(ctx)
				if err != nil {
					if ctx.Err() == nil {
						w.log.Error("rolling up event counts", "error", err.Error())
					}
					break
				}
				if n == 0 {
					break
				}
			}
		case <-prune.C:
			p, err := w.db.PruneExpired(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.Error("applying retention", "error", err.Error())
			}
			messages, err := destination.PruneMessages(ctx, w.db)
			if err != nil && ctx.Err() == nil {
				w.log.Error("applying retention to stored Segment messages", "error", err.Error())
			}
			if p.Events+p.Batches+p.Jobs+messages > 0 {
				w.log.Info("retention applied", "events", p.Events, "deliveries", p.Deliveries, "batches", p.Batches,
					"backfill_jobs", p.Jobs, "segment_messages", messages)
				// Let the freed pages reach the database file, where new rows reuse them.
				if err := w.db.Checkpoint(ctx); err != nil && ctx.Err() == nil {
					w.log.Warn("checkpoint after retention", "error", err.Error())
				}
			}
			prune.Reset(pruneEvery)
		}
	}
}

func (w *eventStoreWorker) Close(ctx context.Context) error {
	if w.cancel == nil {
		return nil
	}
	w.cancel()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *eventStoreWorker) Ready(context.Context) error {
	if !w.alive.Load() {
		return errors.New("event store worker is not running")
	}
	return nil
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
