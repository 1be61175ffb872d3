package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// deps is what every part of the wiring shares.
type deps struct {
	DB        *store.DB
	Box       *auth.Box
	Tokens    *auth.Tokens
	Log       *slog.Logger
	Registry  *prometheus.Registry
	Config    *Config
	PublicURL string
	// Outbound guards every connection to a target a tenant chose.
	Outbound *outbound.Guard

	// Engines are the outbox engines by target, for server.Config.Wake.
	Engines map[string]*delivery.Engine
	// DeliveryMetrics is shared by every engine.
	DeliveryMetrics *delivery.Metrics
}

// wake wakes the engine of target for a tenant.
func (d *deps) wake(target, tenantID string) {
	if e, ok := d.Engines[target]; ok {
		e.Notify(tenantID)
	}
}

// runner is a background part of serve: started after the database opens, closed after the HTTP
// server stopped, in reverse order.
type runner interface {
	Start(ctx context.Context) error
	Close(ctx context.Context) error
	Ready(ctx context.Context) error
}
