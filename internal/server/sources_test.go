package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type createdSource struct {
	ID          string
	WebhookURL  string `json:"webhook_url"`
	Auth        string
	Credentials struct {
		Username, Password string
		ClientID           string `json:"client_id"`
		ClientSecret       string `json:"client_secret"`
		TokenURL           string `json:"token_url"`
	}
}

func (a *TestApp) createSource(token, tid, body string) createdSource {
	a.t.Helper()
	status, b, _ := a.Do("POST", "/api/v1/tenants/"+tid+"/sources", token, body)
	if status != 201 {
		a.t.Fatalf("create source: %d %s", status, b)
	}
	var s createdSource
	json.Unmarshal(b, &s)
	a.Secret(s.Credentials.Password)
	a.Secret(s.Credentials.ClientSecret)
	return s
}

func basicAuth(user, pass string) string {
	r, _ := http.NewRequest("GET", "http://x", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func TestSourceAdminScenarios(t *testing.T) {
	app := NewTestApp(t)
	a, b := app.Tenant("A"), app.Tenant("B")
	ta, tb := app.TenantToken(a), app.TenantToken(b)
	src := app.createSource(ta, a.ID, `{"name": "prod", "user_id_keys": ["customer_id"], "anonymous_id": "skip", "events": ["delivery", "click"]}`)
	if src.Auth != "basic" || src.Credentials.Username == "" || src.Credentials.Password == "" ||
		src.WebhookURL != "http://switchboard.test/hooks/sparkpost/"+src.ID {
		t.Fatalf("created source: %+v", src)
	}
	base := "/api/v1/tenants/" + a.ID + "/sources"
	one := base + "/" + src.ID
	for _, sc := range []Scenario{
		{Name: "read", Method: "GET", URL: one, Token: ta, ExpectedStatus: 200,
			ExpectedContent: []string{`"user_id_keys":["customer_id"]`, `"anonymous_id":"skip"`, `"events":["delivery","click"]`, `"paused":false`},
			NotExpected:     []string{src.Credentials.Password, `"credentials"`}},
		{Name: "list", Method: "GET", URL: base, Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":1`, src.ID},
			NotExpected: []string{src.Credentials.Password}},
		{Name: "other tenant reads", Method: "GET", URL: "/api/v1/tenants/" + b.ID + "/sources/" + src.ID, Token: tb, ExpectedStatus: 404},
		{Name: "other tenant via own path", Method: "GET", URL: "/api/v1/tenants/" + a.ID + "/sources/" + src.ID, Token: tb, ExpectedStatus: 404},
		{Name: "no token", Method: "GET", URL: one, ExpectedStatus: 401},
		{Name: "missing name", Method: "POST", URL: base, Token: ta, Body: `{}`, ExpectedStatus: 400, ExpectedContent: []string{"name: is required"}},
		{Name: "bad auth kind", Method: "POST", URL: base, Token: ta, Body: `{"name": "x", "auth": "digest"}`, ExpectedStatus: 400, ExpectedContent: []string{"auth:"}},
		{Name: "bad anonymous_id", Method: "POST", URL: base, Token: ta, Body: `{"name": "x", "anonymous_id": "random"}`, ExpectedStatus: 400, ExpectedContent: []string{"anonymous_id:"}},
		{Name: "unknown event type", Method: "POST", URL: base, Token: ta, Body: `{"name": "x", "events": ["opened"]}`, ExpectedStatus: 400, ExpectedContent: []string{`events: \"opened\"`}},
		{Name: "empty user_id_keys", Method: "POST", URL: base, Token: ta, Body: `{"name": "x", "user_id_keys": []}`, ExpectedStatus: 400, ExpectedContent: []string{"user_id_keys:"}},
		{Name: "events wrong type", Method: "POST", URL: base, Token: ta, Body: `{"name": "x", "events": "delivery"}`, ExpectedStatus: 400, ExpectedContent: []string{"events: must be an array"}},
		{Name: "provider shown with its hook", Method: "GET", URL: one, Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"provider":"sparkpost"`, `/hooks/sparkpost/` + src.ID}},
		{Name: "unknown provider", Method: "POST", URL: base, Token: ta, Body: `{"name": "x", "provider": "mailchimp"}`, ExpectedStatus: 400, ExpectedContent: []string{"provider: must be one of"}},
		{Name: "signature auth is not SparkPost's", Method: "POST", URL: base, Token: ta, Body: `{"name": "x", "auth": "signature"}`, ExpectedStatus: 400, ExpectedContent: []string{"auth: must be basic or oauth2 for a sparkpost source"}},
		{Name: "public_key on a SparkPost source", Method: "POST", URL: base, Token: ta, Body: `{"name": "x", "public_key": "MFkw"}`, ExpectedStatus: 400, ExpectedContent: []string{"public_key: a SparkPost source has none"}},
		{Name: "change provider refused", Method: "PATCH", URL: one, Token: ta, Body: `{"provider": "sendgrid"}`, ExpectedStatus: 400, ExpectedContent: []string{"provider: cannot be changed"}},
		{Name: "pause", Method: "PATCH", URL: one, Token: ta, Body: `{"paused": true}`, ExpectedStatus: 200, ExpectedContent: []string{`"paused":true`, `"name":"prod"`}},
		{Name: "change auth refused", Method: "PATCH", URL: one, Token: ta, Body: `{"auth": "oauth2"}`, ExpectedStatus: 400, ExpectedContent: []string{"auth: cannot be changed"}},
		{Name: "patch unknown field", Method: "PATCH", URL: one, Token: ta, Body: `{"pause": true}`, ExpectedStatus: 400, ExpectedContent: []string{"pause: unknown field"}},
		{Name: "missing source", Method: "GET", URL: base + "/src_aaaaaaaaaaaaaaaa", Token: ta, ExpectedStatus: 404},
		{Name: "receipt of unknown batch", Method: "GET", URL: one + "/batches/nope", Token: ta, ExpectedStatus: 404},
		{Name: "email-events unknown filter", Method: "GET", URL: "/api/v1/tenants/" + a.ID + "/email-events?campaign=x", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"campaign: unknown parameter"}},
		{Name: "email-events bad from", Method: "GET", URL: "/api/v1/tenants/" + a.ID + "/email-events?from=yesterday", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"from:"}},
		{Name: "email-events per_page too big", Method: "GET", URL: "/api/v1/tenants/" + a.ID + "/email-events?per_page=10001", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"per_page:"}},
		{Name: "email-events sql in filter", Method: "GET", URL: "/api/v1/tenants/" + a.ID + "/email-events?recipients=" + url.QueryEscape("x' OR 1=1 --"), Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":0`}},
		{Name: "deliveries bad target", Method: "GET", URL: "/api/v1/tenants/" + a.ID + "/deliveries?target=email", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"target:"}},
		{Name: "deliveries bad status", Method: "GET", URL: "/api/v1/tenants/" + a.ID + "/deliveries?status=lost", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"status:"}},
		{Name: "deliveries empty", Method: "GET", URL: "/api/v1/tenants/" + a.ID + "/deliveries?target=segment", Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"results":[]`, `"total_count":0`}},
		{Name: "retry needs status", Method: "POST", URL: "/api/v1/tenants/" + a.ID + "/deliveries/retry", Token: ta, Body: `{}`, ExpectedStatus: 400, ExpectedContent: []string{"status: is required"}},
		{Name: "retry only dead or failed", Method: "POST", URL: "/api/v1/tenants/" + a.ID + "/deliveries/retry", Token: ta, Body: `{"status": "delivered"}`, ExpectedStatus: 400, ExpectedContent: []string{"status: must be dead"}},
		{Name: "retry ok", Method: "POST", URL: "/api/v1/tenants/" + a.ID + "/deliveries/retry", Token: ta, Body: `{"status": "dead", "target": "segment", "from": "2024-01-01T00:00:00Z"}`, ExpectedStatus: 200, ExpectedContent: []string{`"requeued":0`}},
	} {
		sc.Run(t, app)
	}
}

func TestSparkPostHookAuthAndCommit(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	src := app.createSource(ta, a.ID, `{"name": "prod"}`)
	hook := "/hooks/sparkpost/" + src.ID
	good := basicAuth(src.Credentials.Username, src.Credentials.Password)
	batch := `[{"msys":{"message_event":{"type":"delivery","event_id":"1","timestamp":"1460989507","rcpt_to":"a@example.com"}}}]`
	for _, sc := range []Scenario{
		{Name: "no auth", Method: "POST", URL: hook, Body: batch, ExpectedStatus: 401},
		{Name: "wrong password", Method: "POST", URL: hook, Body: batch, Headers: []string{"Authorization", basicAuth(src.Credentials.Username, "nope")}, ExpectedStatus: 401},
		{Name: "wrong user", Method: "POST", URL: hook, Body: batch, Headers: []string{"Authorization", basicAuth("spu_x", src.Credentials.Password)}, ExpectedStatus: 401},
		{Name: "bearer on a basic source", Method: "POST", URL: hook, Body: batch, Token: ta, ExpectedStatus: 401},
		{Name: "unknown source", Method: "POST", URL: "/hooks/sparkpost/src_aaaaaaaaaaaaaaaa", Body: batch, Headers: []string{"Authorization", good}, ExpectedStatus: 404},
		{Name: "garbage source id", Method: "POST", URL: "/hooks/sparkpost/..%2Fetc", Body: batch, Headers: []string{"Authorization", good}, ExpectedStatus: 404},
		{Name: "malformed JSON is 400 after auth", Method: "POST", URL: hook, Body: `[{"msys":`, Headers: []string{"Authorization", good}, ExpectedStatus: 400},
		{Name: "object body", Method: "POST", URL: hook, Body: `{"msys": {}, "x": 1}`, Headers: []string{"Authorization", good}, ExpectedStatus: 400},
		{Name: "invalid UTF-8", Method: "POST", URL: hook, Body: []byte("[{\"msys\":{\"message_event\":{\"type\":\"\xff\"}}}]"), Headers: []string{"Authorization", good}, ExpectedStatus: 400, ExpectedContent: []string{"UTF-8"}},
		{Name: "wrong content type", Method: "POST", URL: hook, Body: batch, Headers: []string{"Authorization", good, "Content-Type", "text/xml"}, ExpectedStatus: 415},
		{Name: "ping", Method: "POST", URL: hook, Body: `[{"msys":{}}]`, Headers: []string{"Authorization", good}, ExpectedStatus: 200, ExpectedContent: []string{`"ping":true`}},
		{Name: "empty array ping", Method: "POST", URL: hook, Body: `[]`, Headers: []string{"Authorization", good}, ExpectedStatus: 200},
		{Name: "batch", Method: "POST", URL: hook, Body: batch, Headers: []string{"Authorization", good, "X-MessageSystems-Batch-ID", "b-1"}, ExpectedStatus: 200, ExpectedContent: []string{`"accepted":1`}},
		{Name: "re-sent batch", Method: "POST", URL: hook, Body: batch, Headers: []string{"Authorization", good, "X-MessageSystems-Batch-ID", "b-1"}, ExpectedStatus: 200, ExpectedContent: []string{`"duplicate":true`}},
	} {
		sc.Run(t, app)
	}
	// Exactly one batch is in the inbox, committed before the 200.
	batches, err := app.DB.UnprocessedBatches(t.Context(), 0, 10)
	if err != nil || len(batches) != 1 || batches[0].BatchID != "b-1" || string(batches[0].Body) != batch {
		t.Fatalf("inbox after the hook: %d batches, %v", len(batches), err)
	}
	// Oversize body: 413 (the server's hook limit is 16 MiB).
	huge := `[` + strings.Repeat(`{"msys":{}},`, 1_500_000) + `{"msys":{}}]`
	if status, _, _ := app.Do("POST", hook, "", huge, "Authorization", good); status != 413 {
		t.Fatalf("17 MB batch: %d; want 413", status)
	}
	// A deleted source's hook answers 404.
	if status, _, _ := app.Do("DELETE", "/api/v1/tenants/"+a.ID+"/sources/"+src.ID, ta, nil); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	if status, _, _ := app.Do("POST", hook, "", batch, "Authorization", good); status != 404 {
		t.Fatalf("deleted source's hook: %d", status)
	}
}

func TestRotateKeepsOldCredentialsFor24h(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	src := app.createSource(ta, a.ID, `{"name": "prod"}`)
	hook := "/hooks/sparkpost/" + src.ID
	old := basicAuth(src.Credentials.Username, src.Credentials.Password)
	status, body, _ := app.Do("POST", "/api/v1/tenants/"+a.ID+"/sources/"+src.ID+"/rotate", ta, nil)
	var rot struct {
		Credentials struct{ Username, Password string }
	}
	json.Unmarshal(body, &rot)
	app.Secret(rot.Credentials.Password)
	if status != 200 || rot.Credentials.Password == "" || rot.Credentials.Password == src.Credentials.Password {
		t.Fatalf("rotate: %d %s", status, body)
	}
	fresh := basicAuth(rot.Credentials.Username, rot.Credentials.Password)
	for _, h := range []string{old, fresh} {
		if status, _, _ := app.Do("POST", hook, "", `[]`, "Authorization", h); status != 200 {
			t.Fatalf("credentials right after rotation: %d", status)
		}
	}
	app.DB.Clock = func() time.Time { return time.Now().Add(25 * time.Hour) }
	if status, _, _ := app.Do("POST", hook, "", `[]`, "Authorization", old); status != 401 {
		t.Fatalf("old credentials after 25 h: %d; want 401", status)
	}
	if status, _, _ := app.Do("POST", hook, "", `[]`, "Authorization", fresh); status != 200 {
		t.Fatalf("new credentials after 25 h: %d", status)
	}
}

func TestOAuth2Source(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	src := app.createSource(ta, a.ID, `{"name": "prod", "auth": "oauth2"}`)
	other := app.createSource(ta, a.ID, `{"name": "other", "auth": "oauth2"}`)
	if src.Credentials.ClientID == "" || src.Credentials.ClientSecret == "" || src.Credentials.TokenURL != "http://switchboard.test/oauth/token" {
		t.Fatalf("oauth2 credentials: %+v", src.Credentials)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {src.Credentials.ClientID}, "client_secret": {src.Credentials.ClientSecret}}.Encode()
	tokenOf := func(body any, headers ...string) (int, string) {
		status, b, hdr := app.Do("POST", "/oauth/token", "", body, headers...)
		var out struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int    `json:"expires_in"`
		}
		json.Unmarshal(b, &out)
		if status == 200 && (out.TokenType != "Bearer" || out.ExpiresIn <= 0 || hdr.Get("Cache-Control") != "no-store") {
			t.Fatalf("token answer: %s", b)
		}
		return status, app.Secret(out.AccessToken)
	}
	formCT := []string{"Content-Type", "application/x-www-form-urlencoded"}
	status, tok := tokenOf(form, formCT...)
	if status != 200 || tok == "" {
		t.Fatalf("form-encoded: %d", status)
	}
	if s, _ := tokenOf(map[string]string{"client_id": src.Credentials.ClientID, "client_secret": src.Credentials.ClientSecret}); s != 200 {
		t.Fatalf("JSON credentials: %d", s)
	}
	if s, _ := tokenOf("grant_type=client_credentials", "Content-Type", "application/x-www-form-urlencoded",
		"Authorization", basicAuth(src.Credentials.ClientID, src.Credentials.ClientSecret)); s != 200 {
		t.Fatalf("Basic credentials: %d", s)
	}
	if s, _ := tokenOf(url.Values{"client_id": {src.Credentials.ClientID}, "client_secret": {"wrong"}}.Encode(), formCT...); s != 401 {
		t.Fatalf("wrong secret: %d", s)
	}
	if s, _ := tokenOf(url.Values{"grant_type": {"password"}, "client_id": {src.Credentials.ClientID}, "client_secret": {src.Credentials.ClientSecret}}.Encode(), formCT...); s != 400 {
		t.Fatalf("password grant: %d", s)
	}
	batch := `[{"msys":{"message_event":{"type":"delivery","event_id":"7","timestamp":"1460989507","rcpt_to":"a@example.com"}}}]`
	if s, _, _ := app.Do("POST", "/hooks/sparkpost/"+src.ID, tok, batch); s != 200 {
		t.Fatalf("hook with bearer token: %d", s)
	}
	if s, _, _ := app.Do("POST", "/hooks/sparkpost/"+other.ID, tok, batch); s != 401 {
		t.Fatalf("token of another source: %d", s)
	}
	if s, _, _ := app.Do("POST", "/hooks/sparkpost/"+src.ID, ta, batch); s != 401 {
		t.Fatalf("tenant admin token on the hook: %d", s)
	}
	// The source token opens the hook only: the admin API refuses it.
	if s, _, _ := app.Do("GET", "/api/v1/tenants/"+a.ID, tok, nil); s != 401 {
		t.Fatalf("source token on the admin API: %d", s)
	}
}
