package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSparkPostBatchEventCap: a batch with more events than the cap is refused whole with 413
// and a message saying the limit, before anything is stored; one at the cap is accepted.
func TestSparkPostBatchEventCap(t *testing.T) {
	app := NewTestApp(t)
	tn := app.Tenant("A")
	src := app.createSource(app.TenantToken(tn), tn.ID, `{"name": "prod"}`)
	batch := func(n int) string {
		var b strings.Builder
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"msys":{"message_event":{"type":"delivery","event_id":"%d"}}}`, i)
		}
		b.WriteByte(']')
		return b.String()
	}
	auth := basicAuth(src.Credentials.Username, src.Credentials.Password)
	status, body, _ := app.Do("POST", "/hooks/sparkpost/"+src.ID, "", batch(10_001), "Authorization", auth, "X-MessageSystems-Batch-ID", "too-big")
	if status != 413 || !strings.Contains(string(body), "10001 events in one batch; at most 10000 are accepted") {
		t.Fatalf("10,001 events: %d %s", status, body)
	}
	if status, body, _ := app.Do("GET", "/api/v1/tenants/"+tn.ID+"/sources/"+src.ID+"/batches/too-big", app.TenantToken(tn), nil); status != 404 {
		t.Fatalf("a refused batch was stored: %d %s", status, body)
	}
	if status, body, _ := app.Do("POST", "/hooks/sparkpost/"+src.ID, "", batch(10_000), "Authorization", auth); status != 200 {
		t.Fatalf("10,000 events: %d %s", status, body)
	}
}

// TestDeletedDatabaseAnswers503: with its database file deleted under it, the server never
// acknowledges a batch: the hook answers 503 with Retry-After (SparkPost sends it again later)
// and /readyz answers 503.
func TestDeletedDatabaseAnswers503(t *testing.T) {
	app := NewTestApp(t)
	tn := app.Tenant("A")
	src := app.createSource(app.TenantToken(tn), tn.ID, `{"name": "prod"}`)
	path := app.DB.Path()
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(f)
	}
	auth := basicAuth(src.Credentials.Username, src.Credentials.Password)
	status, body, h := app.Do("POST", "/hooks/sparkpost/"+src.ID, "", `[{"msys":{"message_event":{"type":"delivery","event_id":"1"}}}]`,
		"Authorization", auth)
	if status != 503 || h.Get("Retry-After") == "" || !strings.Contains(string(body), "cannot take writes") {
		t.Fatalf("hook with the database deleted: %d %s (Retry-After %q)", status, body, h.Get("Retry-After"))
	}
	if status, body, _ := app.Do("GET", "/readyz", "", nil); status != 503 {
		t.Fatalf("readyz with the database deleted: %d %s", status, body)
	}
}

// TestHugeHeadersAreRefused: a request's headers are capped at 64 KiB (431), so that many
// connections sending megabytes of headers cannot exhaust memory.
func TestHugeHeadersAreRefused(t *testing.T) {
	app := NewTestApp(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Server.Serve(ctx, ln, 5*time.Second) }()
	defer func() { cancel(); <-done }()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/healthz", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 200<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("200 KiB of headers: %d, want 431", resp.StatusCode)
	}
	resp, err = http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ordinary request: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestClientLeavingIsNoServerError: a client that hangs up before its write is taken is logged
// as 499, not as an ERROR with a 500.
func TestClientLeavingIsNoServerError(t *testing.T) {
	app := NewTestApp(t)
	op := app.OperatorToken()
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequestWithContext(ctx, "POST", "/api/v1/tenants", strings.NewReader(`{"name": "Gone"}`))
		req.Header.Set("Authorization", "Bearer "+op)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		app.Server.Handler().ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("client gone: 500 %s", rec.Body)
		}
	}
	if strings.Contains(app.Logs.String(), `"level":"ERROR"`) {
		t.Fatalf("a client leaving was logged as an error:\n%s", app.Logs.String())
	}
}
