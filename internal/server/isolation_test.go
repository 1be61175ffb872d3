package server_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
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
