package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/server"
)

// TestHookMemoryIsBounded holds the whole hook-memory budget with one slow 16 MiB upload and
// checks that the next large post is told to come back (503 + Retry-After), not buffered.
func TestHookMemoryIsBounded(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	src := app.createSource(app.TenantToken(a), a.ID, `{"name": "prod"}`)
	hook := app.HTTP.URL + "/hooks/sparkpost/" + src.ID
	auth := basicAuth(src.Credentials.Username, src.Credentials.Password)

	pr, pw := io.Pipe()
	slow, _ := http.NewRequest("POST", hook, pr)
	slow.ContentLength = 16 << 20
	slow.Header.Set("Authorization", auth)
	slowDone := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(slow)
		if err != nil {
			slowDone <- 0
			return
		}
		resp.Body.Close()
		slowDone <- resp.StatusCode
	}()
	pw.Write([]byte("[")) // the slow upload has started and holds its reservation
	waitFor(t, "the slow upload to hold its reservation", func() bool { return hookReserved(t, app) == 16<<20 })

	// A second full-size post needs room in the budget too.
	big := "[" + strings.Repeat(" ", 16<<20-2) + "]"
	req, _ := http.NewRequest("POST", hook, strings.NewReader(big))
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second large post while the budget is taken: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The slow upload finishes normally (an empty batch) and frees its room.
	pw.Write([]byte(strings.Repeat(" ", 16<<20-2) + "]"))
	pw.Close()
	if code := <-slowDone; code != 200 {
		t.Fatalf("slow upload: %d", code)
	}
	if status, _, _ := app.Do("POST", "/hooks/sparkpost/"+src.ID, "", `[]`, "Authorization", auth); status != 200 {
		t.Fatalf("after the budget freed up: %d", status)
	}
}

// TestHookMemoryBudgetIsGlobal: tenant shares do not add up to more than the budget. With 32 MiB
// in all and 16 MiB a tenant, two tenants' uploads fill it; a third tenant's large post is told
// to come back (503 + Retry-After), and finds room once the uploads are gone.
func TestHookMemoryBudgetIsGlobal(t *testing.T) {
	app := newHookLimitsApp(t, server.Config{HookMemory: 32 << 20, HookMemoryPerTenant: 16 << 20, HookBodyTimeout: 10 * time.Minute})
	a, b, c := newHookTenant(t, app, "A"), newHookTenant(t, app, "B"), newHookTenant(t, app, "C")

	ua := openRawHook(t, app, a.Source, a.SourceAuth, 16<<20, "[")
	ub := openRawHook(t, app, b.Destination, b.DestinationAuth, 16<<20, "[")
	waitFor(t, "A's and B's uploads to fill the budget", func() bool { return hookReserved(t, app) == 32<<20 })

	big := "[" + strings.Repeat(" ", 16<<20-2) + "]"
	status, body, h := app.Do("POST", c.Source, "", big, "Authorization", c.SourceAuth)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("C's large post while A and B fill the budget: %d %s, Retry-After %q", status, body, h.Get("Retry-After"))
	}
	ua.conn.Close()
	ub.conn.Close()
	waitFor(t, "the uploads' room to be given back", func() bool { return hookReserved(t, app) == 0 })
	if status, body, _ := app.Do("POST", c.Source, "", big, "Authorization", c.SourceAuth); status != 200 {
		t.Fatalf("C's large post after the budget freed up: %d %s", status, body)
	}
}
