// Package app wires Switchboard together: the server, direction A's processor, Segment outbox
// engine, back-fill and event-store upkeep, and direction B's workflow engine, with their
// start and stop order. `switchboard serve` and the tests' rigs build Switchboard with New, so
// what a test runs is what a user runs.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
)

// Worker is a background part of Switchboard: started after the database opens, closed after
// the HTTP server stopped, in reverse order.
type Worker interface {
	Start(ctx context.Context) error
	Close(ctx context.Context) error
	Ready(ctx context.Context) error
}

// App is a wired Switchboard: its server and the workers behind it.
type App struct {
	Server *server.Server
	// Processor turns committed inbox batches into events and Segment deliveries.
	Processor *source.Processor
	// Backfill runs SparkPost back-fill jobs.
	Backfill *sparkpost.BackfillRunner
	// Engines are the outbox engines by target (domain.TargetSegment, domain.TargetWorkflow).
	Engines map[string]*delivery.Engine

	workers []Worker
	started int
}

// Options tune the workers; the zero value is what `switchboard serve` runs. Tests use them to
// shorten backoffs and polls.
type Options struct {
	// Engine, when set, adjusts an outbox engine's options (o.Target says which) before the
	// engine is built.
	Engine func(o *delivery.Options)
	// WorkflowTimeout, when set, bounds each workflow request instead of the sender's default.
	WorkflowTimeout time.Duration
}

// engineOptions applies opt.Engine to an engine's options.
func (opt Options) engineOptions(o delivery.Options) delivery.Options {
	if opt.Engine != nil {
		opt.Engine(&o)
	}
	return o
}

// New wires Switchboard around cfg's database, keys and limits; cfg's Ready, Wake and the
// workers' parts of Sources are filled in here. Nothing runs until Start.
func New(cfg server.Config, opt Options) (*App, error) {
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	a := &App{Engines: map[string]*delivery.Engine{}}
	metrics := delivery.NewMetrics(cfg.Registry, cfg.DB)
	if err := cfg.Registry.Register(writerCollector{cfg.DB}); err != nil {
		return nil, err
	}
	if err := a.wireSources(&cfg, metrics, opt); err != nil {
		return nil, err
	}
	a.wireDestinations(&cfg, metrics, opt)
	cfg.Wake = a.wake
	for _, w := range a.workers {
		cfg.Ready = append(cfg.Ready, w.Ready)
	}
	a.Server = server.New(cfg)
	return a, nil
}

// wake wakes the engine of target for a tenant.
func (a *App) wake(target, tenantID string) {
	if e, ok := a.Engines[target]; ok {
		e.Notify(tenantID)
	}
}

// Start starts every worker in order; on an error the ones started are left for Close.
func (a *App) Start(ctx context.Context) error {
	for _, w := range a.workers[a.started:] {
		if err := w.Start(ctx); err != nil {
			return err
		}
		a.started++
	}
	return nil
}

// Close stops the started workers in reverse order, each handing back the rows it holds; call
// it after the HTTP server stopped, so that nothing new arrives meanwhile.
func (a *App) Close(ctx context.Context) error {
	var errs []error
	for ; a.started > 0; a.started-- {
		errs = append(errs, a.workers[a.started-1].Close(ctx))
	}
	return errors.Join(errs...)
}
