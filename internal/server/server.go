// Package server is Switchboard's HTTP face: the gin router, its middleware (request id,
// logging, metrics, recovery, auth), the admin handlers and the hook endpoints.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// Default limits.
const (
	// AdminBodyLimit caps admin API request bodies; they are small JSON objects.
	AdminBodyLimit = 1 << 20
	// HookBodyLimit caps webhook bodies: SparkPost sends up to ~1,000 events, several MB.
	HookBodyLimit = 16 << 20
	// MaxHeaderBytes caps a request's headers (Go's default is 1 MiB: 1,000 connections could
	// hold a GiB).
	MaxHeaderBytes = 64 << 10
	// DefaultMaxConnections caps open client connections.
	DefaultMaxConnections = 4096
	// DefaultMaxBatchEvents caps the events of one SparkPost batch: SparkPost sends up to about
	// 1,000, and one huge batch must not occupy the writer that every tenant's acks need.
	DefaultMaxBatchEvents = 10_000
)

// Config is what the server needs from the outside.
type Config struct {
	DB        *store.DB
	Tokens    *auth.Tokens
	Box       *auth.Box
	Log       *slog.Logger
	Registry  *prometheus.Registry
	PublicURL string // base of webhook URLs, without a trailing slash

	// SegmentEndpoint is the default Segment API base URL for write keys registered without one.
	SegmentEndpoint string

	// Outbound checks the targets tenants choose (workflow URLs, Segment endpoints, back-fill
	// base URLs) when they are set; nil refuses every private address.
	Outbound *outbound.Guard

	// Ready lists extra readiness checks (workers running); /readyz fails when one fails.
	Ready []func(context.Context) error

	// BodyLimit overrides AdminBodyLimit (tests use a small one).
	BodyLimit int64

	// HookMemory bounds the webhook body bytes read at once, all tenants together
	// (DefaultHookMemory when 0).
	HookMemory int64

	// HookMemoryPerTenant bounds one tenant's share of HookMemory (when 0: a quarter of it, at
	// least one full-size body), so that one tenant cannot take the room others need.
	HookMemoryPerTenant int64

	// HookBodyTimeout and HookBodyRate bound how long an authenticated hook body may take to
	// arrive: HookBodyTimeout plus its size at HookBodyRate bytes per second (DefaultHookBodyTimeout
	// and DefaultHookBodyRate when 0). A slower body is answered 408 and its room given back.
	HookBodyTimeout time.Duration
	HookBodyRate    int64

	// MaxConnections caps open client connections (DefaultMaxConnections when 0).
	MaxConnections int

	// MaxBatchEvents caps the events of one SparkPost batch (DefaultMaxBatchEvents when 0);
	// a larger batch is answered 413.
	MaxBatchEvents int

	// EventReads bounds the email-events reads: concurrency per tenant and in all, the write
	// deadline and the bytes of a page (zero fields: the defaults).
	EventReads EventReadLimits

	// Wake tells the outbox engine of target that a tenant may have deliveries due now.
	Wake func(target, tenantID string)

	// Sources and Destinations carry what the direction A and B handlers need.
	Sources      SourceConfig
	Destinations DestinationConfig
}

// Server holds the router and what its handlers share.
type Server struct {
	Config
	engine     *gin.Engine
	metrics    *httpMetrics
	hookBudget *hookBudget
	backlog    *backlogGate
	authFails  *authLimiter
	eventReads *eventReads
}

// New builds the router.
func New(cfg Config) *Server {
	if cfg.BodyLimit == 0 {
		cfg.BodyLimit = AdminBodyLimit
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxBatchEvents <= 0 {
		cfg.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if cfg.Wake == nil {
		cfg.Wake = func(string, string) {}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{Config: cfg, metrics: newHTTPMetrics(cfg.Registry), authFails: newAuthLimiter(), hookBudget: newHookBudget(cfg, cfg.Registry),
		backlog: newBacklogGate(cfg.Sources.InboxBacklog, cfg.DB.InboxBacklogBytes)}
	s.eventReads = newEventReads(cfg.EventReads, cfg.DB, cfg.Registry)
	s.engine = s.routes()
	return s
}

// Handler returns the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.engine }

// Routes lists every registered route as "METHOD /path/:param".
func (s *Server) Routes() []gin.RouteInfo { return s.engine.Routes() }

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops accepting connections
// and waits up to grace for in-flight requests to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	// Anyone can open connections: each is bounded in header bytes and in time to send them,
	// and their number is capped (past it, new connections wait in the kernel's backlog).
	ln = netutil.LimitListener(ln, s.MaxConnections)
	srv := &http.Server{
		Handler:           s.engine,
		MaxHeaderBytes:    MaxHeaderBytes,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
