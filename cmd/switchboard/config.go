package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Config is Switchboard's configuration: environment first, flags may override (SPEC §2).
type Config struct {
	Addr            string
	DataDir         string
	DatabaseURL     string
	PublicURL       string
	JWTSecret       string
	EncryptionKey   string
	LogLevel        string
	SegmentEndpoint string
	OutboundAllow   string
	MetricsAddr     string
	MaxConnections  string
	MaxBatchEvents  string
	InboxBacklogMB  string
}

// option is one row of the configuration table: its variable, its flag and its default.
type option struct {
	env, flag, def, help string
	secret               bool
	dst                  func(*Config) *string
}

// options is the configuration table; the README's table is written from it.
var options = []option{
	{"SWITCHBOARD_ADDR", "addr", ":8080", "address to listen on", false, func(c *Config) *string { return &c.Addr }},
	{"SWITCHBOARD_DATA_DIR", "data-dir", "./data", "directory for the database and generated key files", false, func(c *Config) *string { return &c.DataDir }},
	{"SWITCHBOARD_DATABASE_URL", "database-url", "", "SQLite file path or DSN (default <data-dir>/switchboard.db)", false, func(c *Config) *string { return &c.DatabaseURL }},
	{"SWITCHBOARD_PUBLIC_URL", "public-url", "", "base URL used to build webhook URLs (default http://localhost:<port>)", false, func(c *Config) *string { return &c.PublicURL }},
	{"SWITCHBOARD_JWT_SECRET", "", "", "JWT signing secret, at least 32 characters (default: generated into <data-dir>/jwt.key)", true, func(c *Config) *string { return &c.JWTSecret }},
	{"SWITCHBOARD_ENCRYPTION_KEY", "", "", "32-byte key (64 hex chars or base64) sealing secrets at rest (default: generated into <data-dir>/encryption.key)", true, func(c *Config) *string { return &c.EncryptionKey }},
	{"SWITCHBOARD_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", false, func(c *Config) *string { return &c.LogLevel }},
	{"SWITCHBOARD_SEGMENT_ENDPOINT", "segment-endpoint", "https://api.segment.io", "default Segment API base URL for write keys registered without one", false, func(c *Config) *string { return &c.SegmentEndpoint }},
	{"SWITCHBOARD_METRICS_ADDR", "metrics-addr", "", "a second address serving /metrics with every tenant-level series, for the operator's scraper (never expose it); the public /metrics shows those series to an operator token only", false, func(c *Config) *string { return &c.MetricsAddr }},
	{"SWITCHBOARD_MAX_CONNECTIONS", "max-connections", "4096", "open client connections at most", false, func(c *Config) *string { return &c.MaxConnections }},
	{"SWITCHBOARD_MAX_BATCH_EVENTS", "max-batch-events", "10000", "events in one SparkPost batch at most (413 past it; SparkPost sends up to about 1,000)", false, func(c *Config) *string { return &c.MaxBatchEvents }},
	{"SWITCHBOARD_INBOX_BACKLOG_MB", "inbox-backlog-mb", "128", "MiB of one tenant's webhook batches that may wait to be processed; past it the tenant's hooks answer 503 with Retry-After (SparkPost and SendGrid retry) until the processor catches up", false, func(c *Config) *string { return &c.InboxBacklogMB }},
	{"SWITCHBOARD_OUTBOUND_ALLOW", "outbound-allow", "", "comma-separated CIDRs that workflow URLs, Segment endpoints and back-fill base URLs may reach although private (loopback, RFC 1918, link-local, …); empty refuses them all", false, func(c *Config) *string { return &c.OutboundAllow }},
}

// bindConfig fills c from the environment and registers a flag for each option that has one and
// is named in flags (nil: every option), so that fs.Parse lets a flag override its variable.
// Secrets have no flag: flags show up in `ps`.
func bindConfig(fs *flag.FlagSet, c *Config, flags []string) {
	for _, o := range options {
		v := o.def
		if e, ok := os.LookupEnv(o.env); ok && e != "" {
			v = e
		}
		*o.dst(c) = v
		if o.flag != "" && (flags == nil || slices.Contains(flags, o.flag)) {
			fs.StringVar(o.dst(c), o.flag, v, o.help+" ($"+o.env+")")
		}
	}
}

// databasePath is the SQLite file to open.
func (c *Config) databasePath() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return filepath.Join(c.DataDir, "switchboard.db")
}

// logger builds the JSON logger at the configured level.
func (c *Config) logger(w *os.File) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToLower(c.LogLevel))); err != nil {
		return nil, fmt.Errorf("SWITCHBOARD_LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
}

// serveLimits are the numeric options of serve.
type serveLimits struct {
	maxConnections, maxBatchEvents, inboxBacklogMB int
}

// limits parses the numeric options, naming the variable of a bad one.
func (c *Config) limits() (serveLimits, error) {
	var l serveLimits
	for _, o := range []struct {
		env, v string
		dst    *int
	}{{"SWITCHBOARD_MAX_CONNECTIONS", c.MaxConnections, &l.maxConnections}, {"SWITCHBOARD_MAX_BATCH_EVENTS", c.MaxBatchEvents, &l.maxBatchEvents},
		{"SWITCHBOARD_INBOX_BACKLOG_MB", c.InboxBacklogMB, &l.inboxBacklogMB}} {
		n, err := strconv.Atoi(strings.TrimSpace(o.v))
		if err != nil || n < 1 {
			return l, fmt.Errorf("%s: %q is not a positive whole number", o.env, o.v)
		}
		*o.dst = n
	}
	return l, nil
}
