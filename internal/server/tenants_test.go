package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// forge signs arbitrary claims, for the tokens a client must never get through with.
func forge(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func noneToken(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "."
}

func TestAdminAPIScenarios(t *testing.T) {
	app := NewTestApp(t)
	a, b := app.Tenant("Tenant A"), app.Tenant("Tenant B")
	op, ta, tb := app.OperatorToken(), app.TenantToken(a), app.TenantToken(b)
	future := time.Now().Add(time.Hour).Unix()
	opClaims := jwt.MapClaims{"role": "operator", "iss": "switchboard", "exp": future}
	expired := forge(t, jwt.SigningMethodHS256, signingKey, jwt.MapClaims{"role": "operator", "iss": "switchboard", "exp": time.Now().Add(-time.Hour).Unix()})
	noExp := forge(t, jwt.SigningMethodHS256, signingKey, jwt.MapClaims{"role": "operator", "iss": "switchboard"})
	noIss := forge(t, jwt.SigningMethodHS256, signingKey, jwt.MapClaims{"role": "operator", "exp": future})
	wrongKey := forge(t, jwt.SigningMethodHS256, []byte("another-key-another-key-another-key!!"), opClaims)
	hs512 := forge(t, jwt.SigningMethodHS512, signingKey, opClaims)
	wrongIss := forge(t, jwt.SigningMethodHS256, signingKey, jwt.MapClaims{"role": "operator", "iss": "someone", "exp": future})
	noRole := forge(t, jwt.SigningMethodHS256, signingKey, jwt.MapClaims{"iss": "switchboard", "exp": future})
	none := noneToken(map[string]any{"role": "operator", "iss": "switchboard", "exp": future})
	tA := "/api/v1/tenants/" + a.ID
	tB := "/api/v1/tenants/" + b.ID
	big := `{"name": "` + strings.Repeat("x", 70<<10) + `"}`

	scenarios := []Scenario{
		// Authentication: 401 whatever the route.
		{Name: "no token", Method: "GET", URL: "/api/v1/tenants", ExpectedStatus: 401, ExpectedContent: []string{"unauthorized", "Authorization"}},
		{Name: "not bearer", Method: "GET", URL: "/api/v1/tenants", Headers: []string{"Authorization", "Basic Zm9vOmJhcg=="}, ExpectedStatus: 401},
		{Name: "alg none", Method: "GET", URL: "/api/v1/tenants", Token: none, ExpectedStatus: 401},
		{Name: "alg HS512", Method: "GET", URL: "/api/v1/tenants", Token: hs512, ExpectedStatus: 401},
		{Name: "expired", Method: "GET", URL: "/api/v1/tenants", Token: expired, ExpectedStatus: 401, ExpectedContent: []string{"expired"}},
		{Name: "no exp", Method: "GET", URL: "/api/v1/tenants", Token: noExp, ExpectedStatus: 401, ExpectedContent: []string{"lacks the required claim exp"}},
		{Name: "no iss", Method: "GET", URL: "/api/v1/tenants", Token: noIss, ExpectedStatus: 401, ExpectedContent: []string{"lacks the required claim iss"}},
		{Name: "wrong signing key", Method: "GET", URL: "/api/v1/tenants", Token: wrongKey, ExpectedStatus: 401},
		{Name: "wrong issuer", Method: "GET", URL: "/api/v1/tenants", Token: wrongIss, ExpectedStatus: 401},
		{Name: "no role", Method: "GET", URL: "/api/v1/tenants", Token: noRole, ExpectedStatus: 401},
		{Name: "garbage token", Method: "GET", URL: tA, Token: "not.a.jwt", ExpectedStatus: 401},
		{Name: "no token on tenant path", Method: "GET", URL: tA + "/segment", ExpectedStatus: 401},

		// Operator-only routes with a tenant token: 403.
		{Name: "tenant creates tenant", Method: "POST", URL: "/api/v1/tenants", Token: ta, Body: map[string]string{"name": "x"}, ExpectedStatus: 403},
		{Name: "tenant lists tenants", Method: "GET", URL: "/api/v1/tenants", Token: ta, ExpectedStatus: 403},
		{Name: "tenant renames itself", Method: "PATCH", URL: tA, Token: ta, Body: map[string]string{"name": "x"}, ExpectedStatus: 403},
		{Name: "tenant deletes itself", Method: "DELETE", URL: tA, Token: ta, ExpectedStatus: 403},
		{Name: "tenant mints tokens", Method: "POST", URL: tA + "/tokens", Token: ta, ExpectedStatus: 403},

		// Tenant A on tenant B's paths: 404, exactly like a missing tenant.
		{Name: "A reads B", Method: "GET", URL: tB, Token: ta, ExpectedStatus: 404, NotExpected: []string{"Tenant B"}},
		{Name: "A revokes B", Method: "POST", URL: tB + "/tokens/revoke", Token: ta, ExpectedStatus: 404},
		{Name: "A puts B's key", Method: "PUT", URL: tB + "/segment", Token: ta, Body: map[string]string{"write_key": "k"}, ExpectedStatus: 404},
		{Name: "A reads B's key", Method: "GET", URL: tB + "/segment", Token: ta, ExpectedStatus: 404},
		{Name: "A on B's operator route", Method: "DELETE", URL: tB, Token: ta, ExpectedStatus: 404},
		{Name: "B still reads itself", Method: "GET", URL: tB, Token: tb, ExpectedStatus: 200, ExpectedContent: []string{b.ID}},
		{Name: "A on missing tenant", Method: "GET", URL: "/api/v1/tenants/ten_doesnotexist0000", Token: ta, ExpectedStatus: 404},
		{Name: "operator on missing tenant", Method: "GET", URL: "/api/v1/tenants/ten_doesnotexist0000", Token: op, ExpectedStatus: 404},
		{Name: "path traversal id", Method: "GET", URL: "/api/v1/tenants/..%2F..%2Fetc", Token: op, ExpectedStatus: 404},
		{Name: "sql in id", Method: "GET", URL: "/api/v1/tenants/x'%20OR%20'1'='1", Token: op, ExpectedStatus: 404},

		// Reads that work.
		{Name: "A reads itself", Method: "GET", URL: tA, Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"Tenant A"`, a.ID}},
		{Name: "operator reads A", Method: "GET", URL: tA, Token: op, ExpectedStatus: 200, ExpectedContent: []string{`"Tenant A"`}},
		{Name: "operator lists", Method: "GET", URL: "/api/v1/tenants", Token: op, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":2`, `"results":[`, a.ID, b.ID}},

		// Bad input: 400 naming the field, 413, 415.
		{Name: "create: malformed JSON", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{"name": `, ExpectedStatus: 400, ExpectedContent: []string{"not valid JSON"}},
		{Name: "create: empty body", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: ``, Headers: []string{"Content-Type", "application/json"}, ExpectedStatus: 400, ExpectedContent: []string{"empty"}},
		{Name: "create: missing name", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{}`, ExpectedStatus: 400, ExpectedContent: []string{"name: is required"}},
		{Name: "create: empty name", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{"name": "  "}`, ExpectedStatus: 400, ExpectedContent: []string{"name: must not be empty"}},
		{Name: "create: bidi override in name", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{"name": "Acme\u202egnp.exe"}`, ExpectedStatus: 400, ExpectedContent: []string{"name: must not contain invisible"}},
		{Name: "create: zero-width in name", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{"name": "Ac\u200bme"}`, ExpectedStatus: 400, ExpectedContent: []string{"name: must not contain invisible"}},
		{Name: "token: ttl too short", Method: "POST", URL: tA + "/tokens", Token: op, Body: `{"ttl": "1ns"}`, ExpectedStatus: 400, ExpectedContent: []string{"ttl: must be from 1m0s"}},
		{Name: "create: name not a string", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{"name": 42}`, ExpectedStatus: 400, ExpectedContent: []string{"name: must be a string"}},
		{Name: "create: unknown field", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{"name": "x", "nmae": "y"}`, ExpectedStatus: 400, ExpectedContent: []string{"nmae: unknown field"}},
		{Name: "create: array body", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `[1,2]`, ExpectedStatus: 400, ExpectedContent: []string{"JSON object"}},
		{Name: "create: trailing data", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{"name": "x"} {}`, ExpectedStatus: 400},
		{Name: "create: oversize", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: big, ExpectedStatus: 413, ExpectedContent: []string{"body_too_large"}},
		{Name: "create: not JSON", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `name=x`, Headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, ExpectedStatus: 415},
		{Name: "create: control chars", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{"name": "a\u0000b"}`, ExpectedStatus: 400, ExpectedContent: []string{"name: must not contain control characters"}},
		{Name: "create: invalid UTF-8", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: []byte("{\"name\": \"\xff\xfe\"}"), ExpectedStatus: 400, ExpectedContent: []string{"UTF-8"}},
		{Name: "create: deep nesting", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: `{"name": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, ExpectedStatus: 400, ExpectedContent: []string{"name: must be a string"}},
		{Name: "create ok", Method: "POST", URL: "/api/v1/tenants", Token: op, Body: map[string]string{"name": "Tenant C"}, ExpectedStatus: 201, ExpectedContent: []string{`"id":"ten_`, `"Tenant C"`, `"created_at"`}},
		{Name: "rename: missing name", Method: "PATCH", URL: tB, Token: op, Body: `{}`, ExpectedStatus: 400, ExpectedContent: []string{"name: is required"}},
		{Name: "rename ok", Method: "PATCH", URL: tB, Token: op, Body: map[string]string{"name": "Tenant B2"}, ExpectedStatus: 200, ExpectedContent: []string{`"Tenant B2"`}},
		{Name: "list: bad limit", Method: "GET", URL: "/api/v1/tenants?limit=0", Token: op, ExpectedStatus: 400, ExpectedContent: []string{"limit:"}},
		{Name: "list: huge limit", Method: "GET", URL: "/api/v1/tenants?limit=5000", Token: op, ExpectedStatus: 400, ExpectedContent: []string{"limit:"}},
		{Name: "list: bad cursor", Method: "GET", URL: "/api/v1/tenants?cursor=zzz", Token: op, ExpectedStatus: 400, ExpectedContent: []string{"cursor:"}},
		{Name: "token: bad ttl", Method: "POST", URL: tA + "/tokens", Token: op, Body: map[string]string{"ttl": "forever"}, ExpectedStatus: 400, ExpectedContent: []string{"ttl:"}},
		{Name: "token: negative ttl", Method: "POST", URL: tA + "/tokens", Token: op, Body: map[string]string{"ttl": "-1h"}, ExpectedStatus: 400, ExpectedContent: []string{"ttl:"}},
		{Name: "token: ttl not a string", Method: "POST", URL: tA + "/tokens", Token: op, Body: `{"ttl": 3600}`, ExpectedStatus: 400, ExpectedContent: []string{"ttl: must be a string"}},
		{Name: "token ok", Method: "POST", URL: tA + "/tokens", Token: op, Body: map[string]string{"ttl": "2h"}, ExpectedStatus: 201, ExpectedContent: []string{`"token":"`, `"expires_at":"`}},
		{Name: "token ok without body", Method: "POST", URL: tA + "/tokens", Token: op, ExpectedStatus: 201},

		// Segment write key.
		{Name: "segment: none yet", Method: "GET", URL: tA + "/segment", Token: ta, ExpectedStatus: 404, ExpectedContent: []string{"no Segment write key"}},
		{Name: "segment: missing key", Method: "PUT", URL: tA + "/segment", Token: ta, Body: `{}`, ExpectedStatus: 400, ExpectedContent: []string{"write_key: is required"}},
		{Name: "segment: empty key", Method: "PUT", URL: tA + "/segment", Token: ta, Body: `{"write_key": ""}`, ExpectedStatus: 400, ExpectedContent: []string{"write_key: must not be empty"}},
		{Name: "segment: key with space", Method: "PUT", URL: tA + "/segment", Token: ta, Body: `{"write_key": "a b"}`, ExpectedStatus: 400, ExpectedContent: []string{"write_key:"}},
		{Name: "segment: bad endpoint", Method: "PUT", URL: tA + "/segment", Token: ta, Body: `{"write_key": "abc", "endpoint": "ftp://x"}`, ExpectedStatus: 400, ExpectedContent: []string{"endpoint:"}},
		{Name: "segment: rate too high", Method: "PUT", URL: tA + "/segment", Token: ta, Body: `{"write_key": "abc", "max_requests_per_second": 5000}`, ExpectedStatus: 400, ExpectedContent: []string{"max_requests_per_second:"}},
		{Name: "segment: rate wrong type", Method: "PUT", URL: tA + "/segment", Token: ta, Body: `{"write_key": "abc", "max_requests_per_second": "fast"}`, ExpectedStatus: 400, ExpectedContent: []string{"max_requests_per_second: must be a number"}},

		// Unknown routes and methods keep the error shape.
		{Name: "unknown route", Method: "GET", URL: "/api/v1/nothing", Token: op, ExpectedStatus: 404},
		{Name: "wrong method", Method: "PUT", URL: "/api/v1/tenants", Token: op, ExpectedStatus: 405},
	}
	for _, sc := range scenarios {
		sc.Run(t, app)
	}
}

func TestSegmentWriteKeyIsShownOnlyAsHint(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	key := app.Secret("wk_live_9a8b7c6d5e4f3a2b1c0dQz42")
	status, body, _ := app.Do("PUT", "/api/v1/tenants/"+a.ID+"/segment", ta, map[string]any{"write_key": key, "endpoint": "https://events.eu1.segmentapis.com/", "max_requests_per_second": 100})
	if status != 200 || strings.Contains(string(body), key) || !strings.Contains(string(body), `"write_key_hint":"…Qz42"`) {
		t.Fatalf("PUT: %d %s", status, body)
	}
	status, body, _ = app.Do("GET", "/api/v1/tenants/"+a.ID+"/segment", ta, nil)
	if status != 200 || strings.Contains(string(body), key) ||
		!strings.Contains(string(body), `"endpoint":"https://events.eu1.segmentapis.com"`) || !strings.Contains(string(body), `"max_requests_per_second":100`) {
		t.Fatalf("GET: %d %s", status, body)
	}
	// Stored sealed, not in the clear.
	k, err := app.DB.SegmentKey(t.Context(), a.ID)
	if err != nil || strings.Contains(string(k.WriteKeyEnc), key) {
		t.Fatalf("write key stored in the clear or missing: %v", err)
	}
	// Default endpoint and rate.
	app.Do("PUT", "/api/v1/tenants/"+a.ID+"/segment", ta, map[string]any{"write_key": app.Secret("another-key-1234")})
	_, body, _ = app.Do("GET", "/api/v1/tenants/"+a.ID+"/segment", ta, nil)
	if !strings.Contains(string(body), `"endpoint":"https://api.segment.io"`) || !strings.Contains(string(body), `"max_requests_per_second":50`) {
		t.Fatalf("defaults: %s", body)
	}
}

func TestRevokeInvalidatesTenantTokens(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	op := app.OperatorToken()
	old := app.TenantToken(a)
	if s, _, _ := app.Do("GET", "/api/v1/tenants/"+a.ID, old, nil); s != 200 {
		t.Fatalf("fresh token: %d", s)
	}
	if s, body, _ := app.Do("POST", "/api/v1/tenants/"+a.ID+"/tokens/revoke", old, nil); s != 200 {
		t.Fatalf("revoke: %d %s", s, body)
	}
	if s, _, _ := app.Do("GET", "/api/v1/tenants/"+a.ID, old, nil); s != 401 {
		t.Fatalf("revoked token still works: %d", s)
	}
	_, body, _ := app.Do("POST", "/api/v1/tenants/"+a.ID+"/tokens", op, map[string]string{"ttl": "1h"})
	var out struct{ Token string }
	json.Unmarshal(body, &out)
	app.Secret(out.Token)
	if s, _, _ := app.Do("GET", "/api/v1/tenants/"+a.ID, out.Token, nil); s != 200 {
		t.Fatalf("token minted after revoke: %d", s)
	}
	// A deleted tenant's tokens stop working too.
	if s, _, _ := app.Do("DELETE", "/api/v1/tenants/"+a.ID, op, nil); s != http.StatusNoContent {
		t.Fatalf("delete: %d", s)
	}
	if s, _, _ := app.Do("GET", "/api/v1/tenants/"+a.ID, out.Token, nil); s != 401 {
		t.Fatalf("deleted tenant's token: %d", s)
	}
	if s, _, _ := app.Do("GET", "/api/v1/tenants/"+a.ID, op, nil); s != 404 {
		t.Fatalf("deleted tenant: %d", s)
	}
}

func TestTenantListPagination(t *testing.T) {
	app := NewTestApp(t)
	for range 5 {
		app.Tenant("t")
	}
	op := app.OperatorToken()
	seen := map[string]bool{}
	next := "/api/v1/tenants?limit=2"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		status, body, _ := app.Do("GET", next, op, nil)
		var page struct {
			Results    []struct{ ID string }
			TotalCount int `json:"total_count"`
			Links      struct{ Next string }
		}
		if status != 200 || json.Unmarshal(body, &page) != nil || page.TotalCount != 5 {
			t.Fatalf("%d %s", status, body)
		}
		for _, r := range page.Results {
			if seen[r.ID] {
				t.Fatalf("tenant %s on two pages", r.ID)
			}
			seen[r.ID] = true
		}
		next = page.Links.Next
	}
	if len(seen) != 5 {
		t.Fatalf("saw %d tenants, want 5", len(seen))
	}
}

func TestOperationsEndpoints(t *testing.T) {
	app := NewTestApp(t)
	app.Start() // /readyz checks the workers
	for _, sc := range []Scenario{
		{Name: "healthz", Method: "GET", URL: "/healthz", ExpectedStatus: 200, ExpectedContent: []string{"ok"}},
		{Name: "readyz", Method: "GET", URL: "/readyz", ExpectedStatus: 200, ExpectedContent: []string{"ready"}},
		{Name: "openapi", Method: "GET", URL: "/openapi.yaml", ExpectedStatus: 200, ExpectedContent: []string{"openapi: 3", "/api/v1/tenants"}},
	} {
		sc.Run(t, app)
	}
	app.Do("GET", "/api/v1/tenants", "", nil)
	status, body, _ := app.Do("GET", "/metrics", "", nil)
	if status != 200 || !strings.Contains(string(body), `switchboard_http_requests_total{method="GET",route="/api/v1/tenants",status="401"} 1`) ||
		!strings.Contains(string(body), "switchboard_http_request_duration_seconds_bucket") {
		t.Fatalf("metrics: %d\n%s", status, body)
	}
}

func TestRequestIDIsEchoedAndLogged(t *testing.T) {
	app := NewTestApp(t)
	_, _, hdr := app.Do("GET", "/healthz", "", nil, "X-Request-Id", "trace-abc-123")
	if hdr.Get("X-Request-Id") != "trace-abc-123" {
		t.Fatalf("X-Request-Id = %q", hdr.Get("X-Request-Id"))
	}
	_, _, hdr = app.Do("GET", "/healthz", "", nil, "X-Request-Id", "bad id\twith tab")
	if id := hdr.Get("X-Request-Id"); id == "" || strings.Contains(id, " ") {
		t.Fatalf("unsafe request id echoed: %q", id)
	}
	if !strings.Contains(app.Logs.String(), `"request_id":"trace-abc-123"`) || !strings.Contains(app.Logs.String(), `"route":"/healthz"`) {
		t.Fatalf("log lacks request id or route:\n%s", app.Logs.String())
	}
}
