package app

import (
	"context"
	"encoding/json"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/server"
)

// wireDestinations builds direction B: the workflow outbox engine.
func (a *App) wireDestinations(cfg *server.Config, metrics *delivery.Metrics, opt Options) {
	db := cfg.DB
	recipient := func(ctx context.Context, tenantID, distinctID string) (json.RawMessage, error) {
		return destination.Recipient(ctx, db, tenantID, distinctID)
	}
	sender := delivery.NewWorkflowSender(db, cfg.Box, recipient, cfg.Outbound, cfg.Log)
	if opt.WorkflowTimeout > 0 {
		sender.Timeout = opt.WorkflowTimeout
	}
	engine := delivery.NewEngine(db, sender, opt.engineOptions(delivery.Options{
		Target: domain.TargetWorkflow,
		// 32 per claim at 4 concurrent POSTs of at most 10 s each: a claim against a receiver
		// that hangs ends within 80 s, inside SendTimeout.
		Batch:       32,
		SendTimeout: 2 * time.Minute,
		Observe:     metrics.Observer(domain.TargetWorkflow),
	}), cfg.Log)
	// The Segment hook and POST …/deliveries/retry wake it through server.Config.Wake. Retention
	// of stored Segment messages runs with the event store's (sources.go).
	a.Engines[domain.TargetWorkflow] = engine
	a.workers = append(a.workers, engine) // *delivery.Engine is a Worker: Start, Close, Ready
}
