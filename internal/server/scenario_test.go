package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/app"
	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestApp is a real server on a real SQLite file, served by httptest on 127.0.0.1.
type TestApp struct {
	t       testing.TB
	DB      *store.DB
	Tokens  *auth.Tokens
	Server  *server.Server
	App     *app.App // the workers behind Server, wired as serve wires them; not running until Start
	HTTP    *httptest.Server
	Logs    *syncBuffer
	secrets []string // every secret the test handed out or received; the log must hold none
}

var signingKey = []byte("test-signing-key-test-signing-key-0123")

// NewTestApp starts a server wired by package app, as `switchboard serve` is, with each of opts
// applied to its configuration; its workers run once the test calls Start. The test ends by
// checking the captured log for secrets.
func NewTestApp(tb testing.TB, opts ...func(*server.Config)) *TestApp {
	return newTestApp(tb, app.Options{}, opts...)
}

// newTestApp is NewTestApp with the workers tuned by wopt.
func newTestApp(tb testing.TB, wopt app.Options, opts ...func(*server.Config)) *TestApp {
	tb.Helper()
	db, err := store.Open(context.Background(), filepath.Join(tb.TempDir(), "switchboard.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tokens, _ := auth.NewTokens(signingKey)
	box, _ := auth.NewBox(bytes.Repeat([]byte{7}, 32))
	logs := &syncBuffer{}
	cfg := server.Config{
		DB: db, Tokens: tokens, Box: box,
		Log:             slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PublicURL:       "http://switchboard.test",
		SegmentEndpoint: "https://api.segment.io",
		Outbound:        outbound.LoopbackOnly(), // the tests' receivers listen on 127.0.0.1
		BodyLimit:       64 << 10,
		HookMemory:      16 << 20, // the minimum: one full-size hook body at a time
	}
	for _, o := range opts {
		o(&cfg)
	}
	wired, err := app.New(cfg, wopt)
	if err != nil {
		tb.Fatal(err)
	}
	a := &TestApp{t: tb, DB: db, Tokens: tokens, Server: wired.Server, App: wired, HTTP: httptest.NewServer(wired.Server.Handler()), Logs: logs}
	tb.Cleanup(func() {
		a.HTTP.CloseClientConnections() // stalled test clients must not hold Close up
		a.HTTP.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := wired.Close(ctx); err != nil {
			tb.Errorf("closing the workers: %v", err)
		}
		db.Close()
		a.AssertLogsClean()
	})
	return a
}

// Start runs the app's workers (processor, outbox engines, back-fill, upkeep) until the test ends.
func (a *TestApp) Start() {
	a.t.Helper()
	if err := a.App.Start(a.t.Context()); err != nil {
		a.t.Fatal(err)
	}
}

// Secret registers a value that must never appear in the log.
func (a *TestApp) Secret(s string) string {
	a.secrets = append(a.secrets, s)
	return s
}

// AssertLogsClean fails the test if any registered secret reached the log.
func (a *TestApp) AssertLogsClean() {
	logs := a.Logs.String()
	for _, s := range a.secrets {
		if s != "" && strings.Contains(logs, s) {
			a.t.Errorf("the log contains a secret (%s…)", s[:min(6, len(s))])
		}
	}
}

func (a *TestApp) OperatorToken() string {
	tok, _, err := a.Tokens.Operator(time.Hour)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.Secret(tok)
}

func (a *TestApp) TenantToken(t *store.Tenant) string {
	tok, _, err := a.Tokens.Tenant(t.ID, t.TokenGen, time.Hour)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.Secret(tok)
}

func (a *TestApp) Tenant(name string) *store.Tenant {
	t, err := a.DB.CreateTenant(context.Background(), name)
	if err != nil {
		a.t.Fatal(err)
	}
	return t
}

// Do sends a request and returns the status and body.
func (a *TestApp) Do(method, path, token string, body any, headers ...string) (int, []byte, http.Header) {
	a.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.HTTP.URL+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := a.HTTP.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// Scenario is one API call and what must come back (PocketBase's ApiScenario, trimmed).
type Scenario struct {
	Name            string
	Method          string
	URL             string
	Token           string
	Body            any
	Headers         []string
	ExpectedStatus  int
	ExpectedContent []string // substrings the body must contain
	NotExpected     []string // substrings the body must not contain
}

// Run executes the scenario as a subtest.
func (sc Scenario) Run(t *testing.T, app *TestApp) {
	t.Run(sc.Name, func(t *testing.T) {
		status, body, hdr := app.Do(sc.Method, sc.URL, sc.Token, sc.Body, sc.Headers...)
		if status != sc.ExpectedStatus {
			t.Fatalf("%s %s: status %d, want %d; body %s", sc.Method, sc.URL, status, sc.ExpectedStatus, body)
		}
		if hdr.Get("X-Request-Id") == "" {
			t.Errorf("no X-Request-Id header")
		}
		if status >= 400 {
			var e struct {
				Error struct{ Code, Message string }
			}
			if json.Unmarshal(body, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Errorf("error body is not {\"error\": {code, message}}: %s", body)
			}
		}
		for _, want := range sc.ExpectedContent {
			if !strings.Contains(string(body), want) {
				t.Errorf("body lacks %q: %s", want, body)
			}
		}
		for _, bad := range sc.NotExpected {
			if strings.Contains(string(body), bad) {
				t.Errorf("body contains %q: %s", bad, body)
			}
		}
	})
}
