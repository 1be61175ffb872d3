// Command switchboard runs the Switchboard connector hub (serve), mints tokens offline (token),
// applies database migrations (migrate) and prints its version (version).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-hub/switchboard/internal/app"
	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// shutdownGrace is how long in-flight requests get after SIGTERM; SPEC §2 asks for exit within
// 10 s, and the workers and the database need the rest.
const shutdownGrace = 6 * time.Second

// workerGrace is how long workers get to finish a send in progress before they hand rows back.
const workerGrace = 2 * time.Second

const usage = `Switchboard: SparkPost → Segment and Segment → subscribers, on one SQLite file.

Usage:
  switchboard serve   [flags]                 run the HTTP server and workers
  switchboard token   --operator [--ttl 24h]  mint an operator token
  switchboard token   --tenant ID [--ttl 24h] mint a tenant token
  switchboard migrate [flags]                 apply database migrations and exit
  switchboard export  --tenant ID -o FILE.csv write stored SparkPost events as CSV
  switchboard version                         print the version

Every flag has an environment variable (SWITCHBOARD_*); run "switchboard serve -h" for the list.
`

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs one CLI verb and returns the process exit code.
func Main(ctx context.Context, args []string, stdout io.Writer, stderr *os.File) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "token":
		err = token(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = migrate(ctx, args[1:], stdout, stderr)
	case "export":
		err = export(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "switchboard %s (%s)\n", version, runtime.Version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "switchboard %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// verbs holds, for each verb that takes flags, its synopsis for -h and the configuration flags it
// takes: the server's flags are serve's; the offline verbs only need to find the data directory.
var verbs = map[string]struct {
	synopsis string
	config   []string // nil: every configuration flag
}{
	"serve":   {"switchboard serve [flags]", nil},
	"token":   {"switchboard token --operator | --tenant ID [--ttl 24h] [flags]", []string{"data-dir", "database-url"}},
	"migrate": {"switchboard migrate [flags]", []string{"data-dir", "database-url"}},
	"export":  {"switchboard export --tenant ID [-o FILE.csv] [--url URL] [filters]", []string{"data-dir", "database-url"}},
}

func parseFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*Config, error) {
	fs := flag.NewFlagSet("switchboard "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	verb := verbs[name]
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFlags:\n", verb.synopsis)
		fs.PrintDefaults()
	}
	cfg := &Config{}
	bindConfig(fs, cfg, verb.config)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, nil
}

// openAll loads the keys and opens the database, the common start of every verb.
func openAll(ctx context.Context, cfg *Config) (*auth.Keys, *store.DB, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	keys, err := auth.LoadKeys(cfg.DataDir, cfg.JWTSecret, cfg.EncryptionKey)
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, cfg.databasePath())
	if err != nil {
		return nil, nil, err
	}
	return keys, db, nil
}

func serve(ctx context.Context, args []string, stdout io.Writer, stderr *os.File) error {
	var startFresh bool
	cfg, err := parseFlags("serve", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&startFresh, "start-fresh", false, "start with a new, empty database although the data directory holds keys of an earlier one")
	})
	if err != nil {
		return err
	}
	limits, err := cfg.limits()
	if err != nil {
		return err
	}
	log, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	release, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer release()
	if err := checkDatabasePresent(cfg, startFresh); err != nil {
		return err
	}
	keys, db, err := openAll(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	tokens, err := auth.NewTokens(keys.JWT)
	if err != nil {
		return err
	}
	box, err := auth.NewBox(keys.Encryption)
	if err != nil {
		return err
	}
	for _, path := range keys.Generated {
		log.Info("generated key file", "path", path)
	}

	allow, err := outbound.ParseAllow(cfg.OutboundAllow)
	if err != nil {
		return err
	}
	guard := outbound.New(allow)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	publicURL := strings.TrimRight(cfg.PublicURL, "/")
	if publicURL == "" {
		publicURL = fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := app.New(server.Config{
		DB: db, Tokens: tokens, Box: box, Log: log, Registry: reg,
		PublicURL: publicURL, SegmentEndpoint: cfg.SegmentEndpoint, Outbound: guard,
		MaxConnections: limits.maxConnections, MaxBatchEvents: limits.maxBatchEvents,
		Sources: server.SourceConfig{InboxBacklog: int64(limits.inboxBacklogMB) << 20},
	}, app.Options{})
	if err != nil {
		return err
	}
	srv := a.Server
	// Workers stop after the HTTP server: nothing new arrives while they hand back their rows.
	defer func() {
		wctx, cancel := context.WithTimeout(context.Background(), workerGrace)
		defer cancel()
		if err := a.Close(wctx); err != nil {
			log.Error("stopping workers", "error", err.Error())
		}
	}()
	if err := a.Start(ctx); err != nil {
		return err
	}

	if db.Created {
		// First start: the operator needs a way in. Printed on stdout, never logged.
		tok, exp, err := tokens.Operator(24 * time.Hour)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nOperator token (shown once; valid until %s; mint another with `switchboard token --operator`):\n\n%s\n\n",
			exp.Format(time.RFC3339), tok)
	}
	if cfg.MetricsAddr != "" {
		// Every series, tenant-level ones included, for the operator's own scraper: this
		// address must not face the internet (the public /metrics leaves tenants out).
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("SWITCHBOARD_METRICS_ADDR: %w", err)
		}
		msrv := &http.Server{Handler: operatorMux(srv.MetricsHandler()), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: server.MaxHeaderBytes}
		go msrv.Serve(mln)
		defer msrv.Close()
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	log.Info("listening", "addr", ln.Addr().String(), "public_url", publicURL, "database", db.Path(), "version", version,
		"outbound_allow", cfg.OutboundAllow)
	if err := srv.Serve(ctx, ln, shutdownGrace); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// operatorMux is the private operator listener: every metric series, and Go's profiler under
// /debug/pprof/ (CPU, heap, goroutines, for finding where the time goes under load).
func operatorMux(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", metrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func token(ctx context.Context, args []string, stdout io.Writer, stderr *os.File) error {
	var operator bool
	var tenantID string
	var ttl time.Duration
	cfg, err := parseFlags("token", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&operator, "operator", false, "mint an operator token")
		fs.StringVar(&tenantID, "tenant", "", "mint a token for this tenant id")
		fs.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	})
	if err != nil {
		return err
	}
	if operator == (tenantID != "") {
		return errors.New("give exactly one of --operator or --tenant ID")
	}
	keys, db, err := openAll(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	tokens, err := auth.NewTokens(keys.JWT)
	if err != nil {
		return err
	}
	var tok string
	if operator {
		tok, _, err = tokens.Operator(ttl)
	} else {
		var t *store.Tenant
		if t, err = db.Tenant(ctx, tenantID); err != nil {
			return fmt.Errorf("tenant %q: %s", tenantID, domain.ErrorMessage(err))
		}
		tok, _, err = tokens.Tenant(t.ID, t.TokenGen, ttl)
	}
	if err != nil {
		return errors.New(domain.ErrorMessage(err))
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func migrate(ctx context.Context, args []string, stdout io.Writer, stderr *os.File) error {
	cfg, err := parseFlags("migrate", args, stderr, nil)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.databasePath())
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database %s is at schema version %d\n", db.Path(), v)
	return nil
}
