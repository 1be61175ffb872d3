package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/server"
)

// wireDestinations builds direction B: the workflow outbox engine.
func wireDestinations(d *deps) (server.DestinationConfig, []runner, error) {
	recipient := func(ctx context.Context, tenantID, distinctID string) (json.RawMessage, error) {
		return destination.Recipient(ctx, d.DB, tenantID, distinctID)
	}
	sender := delivery.NewWorkflowSender(d.DB, d.Box, recipient, d.Outbound, d.Log)
	engine := delivery.NewEngine(d.DB, sender, delivery.Options{
		Target: delivery.TargetWorkflow,
		// 32 per claim at 4 concurrent POSTs of at most 10 s each: a claim against a receiver
		// that hangs ends within 80 s, inside SendTimeout.
		Batch:       32,
		SendTimeout: 2 * time.Minute,
		Observe:     d.DeliveryMetrics.Observer(delivery.TargetWorkflow),
	}, d.Log)
	// The Segment hook and POST …/deliveries/retry wake it through server.Config.Wake. Retention
	// of stored Segment messages runs with the event store's (wire_sources.go).
	d.Engines[delivery.TargetWorkflow] = engine
	return server.DestinationConfig{}, []runner{engine}, nil // *delivery.Engine is a worker: Start, Close, Ready
}
