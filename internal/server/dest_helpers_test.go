package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/app"
	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// destApp is a TestApp with direction B wired as serve wires it: a real workflow delivery engine
// (with short retry delays) woken by the hook, and one tenant with its token.
type destApp struct {
	*TestApp
	Engine *delivery.Engine
	T      *store.Tenant
	Token  string
}

// newDestApp starts the server, its workflow engine and a tenant.
func newDestApp(t *testing.T) *destApp {
	t.Helper()
	logs := &syncBuffer{}
	app, engine := startDestServer(t, server.DestinationConfig{}, logs)
	a := &destApp{TestApp: app, Engine: engine}
	a.T = app.Tenant("Acme")
	a.Token = app.TenantToken(a.T)
	return a
}

// startDestServer starts a whole server (NewTestApp, started) whose workflow engine has short
// retry delays, logging to logs.
func startDestServer(tb testing.TB, cfg server.DestinationConfig, logs io.Writer) (*TestApp, *delivery.Engine) {
	tb.Helper()
	tune := app.Options{
		Engine: func(o *delivery.Options) {
			if o.Target == domain.TargetWorkflow {
				o.SendTimeout, o.Idle = 30*time.Second, 100*time.Millisecond
				o.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
			}
		},
		WorkflowTimeout: 5 * time.Second,
	}
	a := newTestApp(tb, tune, func(c *server.Config) {
		c.Destinations = cfg
		c.HookMemory = 0 // the default budget, as serve has it
		c.Log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	if buf, ok := logs.(*syncBuffer); ok {
		a.Logs = buf
	} // else secrets are checked against NewTestApp's buffer, which stays empty: logs went elsewhere
	a.Start()
	return a, a.App.Engines[domain.TargetWorkflow]
}

// path returns the tenant's admin path under /api/v1/tenants/{tid}.
func (a *destApp) path(p string) string { return "/api/v1/tenants/" + a.T.ID + p }

// createdDestination is a destination with the secrets only its creation shows.
type createdDestination struct {
	ID           string `json:"id"`
	APIKey       string `json:"api_key"`
	SharedSecret string `json:"shared_secret"`
	WebhookURL   string `json:"webhook_url"`
}

// destination creates a destination of the tenant with the given JSON body.
func (a *destApp) destination(body string) createdDestination {
	a.t.Helper()
	status, resp, _ := a.Do("POST", a.path("/destinations"), a.Token, body)
	var d createdDestination
	if status != 201 || json.Unmarshal(resp, &d) != nil || d.ID == "" || d.APIKey == "" || d.SharedSecret == "" {
		a.t.Fatalf("create destination: %d %s", status, resp)
	}
	a.Secret(d.APIKey)
	a.Secret(d.SharedSecret)
	return d
}

// hook posts body to a destination's hook with its API key.
func (a *destApp) hook(d createdDestination, body any, headers ...string) (int, []byte) {
	a.t.Helper()
	status, resp, _ := a.Do("POST", "/hooks/segment/"+d.ID, d.APIKey, body, headers...)
	if status >= 500 {
		a.t.Fatalf("hook answered %d: %s", status, resp)
	}
	return status, resp
}

// mustHook posts body and requires 200.
func (a *destApp) mustHook(d createdDestination, body any, headers ...string) destination.Receipt {
	a.t.Helper()
	status, resp := a.hook(d, body, headers...)
	var r destination.Receipt
	if status != 200 || json.Unmarshal(resp, &r) != nil {
		a.t.Fatalf("hook: %d %s", status, resp)
	}
	return r
}

// profile returns a profile's JSON as a map without its timestamps, or nil when it is 404.
func (a *destApp) profile(distinctID string) map[string]any {
	a.t.Helper()
	status, body, _ := a.Do("GET", a.path("/users/"+distinctID), a.Token, nil)
	if status == 404 {
		return nil
	}
	var p map[string]any
	if status != 200 || json.Unmarshal(body, &p) != nil {
		a.t.Fatalf("GET user %s: %d %s", distinctID, status, body)
	}
	for _, k := range []string{"created_at", "updated_at"} {
		if _, ok := p[k]; !ok {
			a.t.Fatalf("profile lacks %s: %s", k, body)
		}
		delete(p, k)
	}
	return p
}

// events returns the names of a subscriber's events, newest first.
func (a *destApp) events(distinctID string) []string {
	a.t.Helper()
	status, body, _ := a.Do("GET", a.path("/users/"+distinctID+"/events"), a.Token, nil)
	if status == 404 {
		return nil
	}
	var page struct{ Results []struct{ Name string } }
	if status != 200 || json.Unmarshal(body, &page) != nil {
		a.t.Fatalf("GET events: %d %s", status, body)
	}
	names := []string{}
	for _, e := range page.Results {
		names = append(names, e.Name)
	}
	return names
}

// workflowDeliveries returns the tenant's workflow deliveries, newest first.
func (a *destApp) workflowDeliveries() []*store.Delivery {
	a.t.Helper()
	ds, _, err := a.DB.Deliveries(context.Background(), store.DeliveryFilter{TenantID: a.T.ID, Target: domain.TargetWorkflow, Limit: 1000})
	if err != nil {
		a.t.Fatal(err)
	}
	return ds
}

// waitFor polls cond until it holds, failing the test after a generous deadline. It waits for
// work the engine does in the background; it never asserts how fast that work is.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// workflowReceiver is a workflow endpoint on 127.0.0.1 that checks each POST's signature.
type workflowReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret string
	posts  []workflowPost
	// answer, when set, decides the answer to the n-th POST (0-based); "close" drops the connection.
	answer func(n int) string
}

// workflowPost is one POST a receiver got.
type workflowPost struct {
	IdempotencyKey string
	SignatureOK    bool
	Status         int // what the receiver answered (0: connection dropped)
	Body           struct {
		Workflow   string `json:"workflow"`
		WorkflowID string `json:"workflow_id"`
		Event      struct {
			Name       string         `json:"name"`
			Properties map[string]any `json:"properties"`
			Timestamp  time.Time      `json:"timestamp"`
			MessageID  string         `json:"message_id"`
		} `json:"event"`
		Recipient map[string]any `json:"recipient"`
	}
}

func newWorkflowReceiver(t *testing.T) *workflowReceiver {
	r := &workflowReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		mac := hmac.New(sha256.New, []byte(r.secret))
		mac.Write(body)
		p := workflowPost{
			IdempotencyKey: req.Header.Get("Idempotency-Key"),
			SignatureOK:    hmac.Equal([]byte(req.Header.Get("X-Switchboard-Signature")), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))),
		}
		if err := json.Unmarshal(body, &p.Body); err != nil {
			t.Errorf("workflow body is not JSON: %s", body)
		}
		answer := "200"
		if r.answer != nil {
			answer = r.answer(len(r.posts))
		}
		switch answer {
		case "close":
			r.posts = append(r.posts, p)
			r.mu.Unlock()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case "503":
			p.Status = 503
			w.Header().Set("Retry-After", "0")
		default:
			p.Status = 200
		}
		r.posts = append(r.posts, p)
		r.mu.Unlock()
		w.WriteHeader(p.Status)
	}))
	t.Cleanup(r.Close)
	return r
}

// all returns the POSTs received so far.
func (r *workflowReceiver) all() []workflowPost {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]workflowPost(nil), r.posts...)
}

// accepted returns the POSTs the receiver answered 2xx.
func (r *workflowReceiver) accepted() []workflowPost {
	var out []workflowPost
	for _, p := range r.all() {
		if p.Status == 200 {
			out = append(out, p)
		}
	}
	return out
}

// workflow creates a workflow for event posting to the receiver, which learns its secret.
func (a *destApp) workflow(r *workflowReceiver, event string) string {
	a.t.Helper()
	status, body, _ := a.Do("POST", a.path("/workflows"), a.Token, map[string]string{"name": "wf " + event, "event": event, "url": r.URL + "/hook"})
	var w struct{ ID, Secret string }
	if status != 201 || json.Unmarshal(body, &w) != nil || w.Secret == "" {
		a.t.Fatalf("create workflow: %d %s", status, body)
	}
	a.Secret(w.Secret)
	r.mu.Lock()
	r.secret = w.Secret
	r.mu.Unlock()
	return w.ID
}

// jsonEqual compares got (decoded JSON) with the JSON text want.
func jsonEqual(t *testing.T, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want: %v", err)
	}
	g, _ := json.Marshal(got)
	var gg any
	json.Unmarshal(g, &gg)
	if !reflect.DeepEqual(gg, w) {
		t.Errorf("JSON mismatch\n got: %s\nwant: %s", g, strings.Join(strings.Fields(want), " "))
	}
}
