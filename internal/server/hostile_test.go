package server_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-hub/switchboard/internal/destination"
)

// hostileCase is one piece of bad input and the answer it must get.
type hostileCase struct {
	name    string
	method  string
	url     string
	token   string
	body    any
	headers []string
	status  int
	code    string // the error code, for 4xx answers
}

// TestHostileInput is the catalogue of bad input every public endpoint must answer with a clear
// 4xx: never a 5xx, never a panic, and the server stays healthy afterwards.
func TestHostileInput(t *testing.T) {
	app := NewTestApp(t)
	app.Start() // the whole server: the catalogue must leave it ready
	a, b := app.Tenant("A"), app.Tenant("B")
	op, ta := app.OperatorToken(), app.TenantToken(a)
	src := app.createSource(ta, a.ID, `{"name": "prod"}`)
	oauthSrc := app.createSource(ta, a.ID, `{"name": "oauth", "auth": "oauth2"}`)
	hook := "/hooks/sparkpost/" + src.ID
	good := basicAuth(src.Credentials.Username, src.Credentials.Password)
	tA := "/api/v1/tenants/" + a.ID
	expired := forge(t, jwt.SigningMethodHS256, signingKey, jwt.MapClaims{"role": "operator", "iss": "switchboard", "exp": time.Now().Add(-time.Minute).Unix()})
	forged := forge(t, jwt.SigningMethodHS256, []byte("not-the-key-not-the-key-not-the-key!"), jwt.MapClaims{"role": "operator", "iss": "switchboard", "exp": time.Now().Add(time.Hour).Unix()})
	crossTenant := forge(t, jwt.SigningMethodHS256, signingKey, jwt.MapClaims{"role": "tenant", "tid": b.ID, "gen": 1, "iss": "switchboard", "exp": time.Now().Add(time.Hour).Unix()})
	nested := strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100)
	tenMB := `"` + strings.Repeat("x", 10<<20) + `"`
	sqlish := url.QueryEscape(`a@b.com' OR '1'='1`) + "," + url.QueryEscape(`"; DROP TABLE email_events; --`)
	_, dbody, _ := app.Do("POST", tA+"/destinations", ta, `{"name": "seg", "require_signature": true}`)
	var dst struct {
		ID           string
		APIKey       string `json:"api_key"`
		SharedSecret string `json:"shared_secret"`
	}
	json.Unmarshal(dbody, &dst)
	app.Secret(dst.APIKey)
	app.Secret(dst.SharedSecret)
	seg := "/hooks/segment/" + dst.ID
	key := []string{"Authorization", "Bearer " + dst.APIKey}
	signed := func(body string, extra ...string) []string {
		return append(append([]string{"X-Signature", destination.Sign(dst.SharedSecret, []byte(body))}, key...), extra...)
	}
	manyMsgs := "[" + strings.Repeat(`{"type":"track","userId":"u","event":"E"},`, 10000) + `{"type":"track","userId":"u","event":"E"}]`

	cases := []hostileCase{
		// Admin API: bodies.
		{"tenant: malformed JSON", "POST", "/api/v1/tenants", op, `{"name": "x"`, nil, 400, "invalid"},
		{"tenant: truncated JSON", "POST", "/api/v1/tenants", op, `{"na`, nil, 400, "invalid"},
		{"tenant: name is a number", "POST", "/api/v1/tenants", op, `{"name": 7}`, nil, 400, "invalid"},
		{"tenant: name is an object", "POST", "/api/v1/tenants", op, `{"name": {"x": 1}}`, nil, 400, "invalid"},
		{"tenant: name is null", "POST", "/api/v1/tenants", op, `{"name": null}`, nil, 400, "invalid"},
		{"tenant: 100-level nesting", "POST", "/api/v1/tenants", op, `{"name": "x", "extra": ` + nested + `}`, nil, 400, "invalid"},
		{"tenant: 10 MB string", "POST", "/api/v1/tenants", op, `{"name": ` + tenMB + `}`, nil, 413, "body_too_large"},
		{"tenant: invalid UTF-8", "POST", "/api/v1/tenants", op, []byte("{\"name\": \"\xc3\x28\"}"), nil, 400, "invalid"},
		{"tenant: raw NUL byte", "POST", "/api/v1/tenants", op, []byte("{\"name\": \"a\x00b\"}"), nil, 400, "invalid"},
		{"tenant: escaped NUL", "POST", "/api/v1/tenants", op, `{"name": "a\u0000b"}`, nil, 400, "invalid"},
		{"tenant: array body", "POST", "/api/v1/tenants", op, `[{"name": "x"}]`, nil, 400, "invalid"},
		{"tenant: XML", "POST", "/api/v1/tenants", op, `<name>x</name>`, []string{"Content-Type", "application/xml"}, 415, "unsupported_type"},
		{"tenant: text/plain", "POST", "/api/v1/tenants", op, `{"name": "x"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_type"},
		{"tenant: garbage content type", "POST", "/api/v1/tenants", op, `{"name": "x"}`, []string{"Content-Type", ";;;"}, 415, "unsupported_type"},
		{"segment: huge number", "PUT", tA + "/segment", ta, `{"write_key": "k", "max_requests_per_second": 1e309}`, nil, 400, "invalid"},
		{"segment: negative rate", "PUT", tA + "/segment", ta, `{"write_key": "k", "max_requests_per_second": -5}`, nil, 400, "invalid"},
		{"segment: float rate", "PUT", tA + "/segment", ta, `{"write_key": "k", "max_requests_per_second": 2.5}`, nil, 400, "invalid"},
		{"segment: endpoint javascript:", "PUT", tA + "/segment", ta, `{"write_key": "k", "endpoint": "javascript:alert(1)"}`, nil, 400, "invalid"},
		{"segment: endpoint with credentials", "PUT", tA + "/segment", ta, `{"write_key": "k", "endpoint": "https://u:p@api.segment.io"}`, nil, 400, "invalid"},
		{"segment: write key with newline", "PUT", tA + "/segment", ta, `{"write_key": "k\nX-Injected: 1"}`, nil, 400, "invalid"},
		{"source: events not strings", "POST", tA + "/sources", ta, `{"name": "x", "events": [1, 2]}`, nil, 400, "invalid"},
		{"token: ttl of years", "POST", tA + "/tokens", op, `{"ttl": "87600h"}`, nil, 400, "invalid"},

		// Admin API: credentials and ids.
		{"expired operator token", "GET", "/api/v1/tenants", expired, nil, nil, 401, "unauthorized"},
		{"forged operator token", "GET", "/api/v1/tenants", forged, nil, nil, 401, "unauthorized"},
		{"token with a space", "GET", "/api/v1/tenants", "a b", nil, nil, 401, "unauthorized"},
		{"10 KB token", "GET", "/api/v1/tenants", strings.Repeat("e", 10<<10), nil, nil, 401, "unauthorized"},
		{"tenant B's token on A", "GET", tA, crossTenant, nil, nil, 404, "not_found"},
		{"path traversal in tenant id", "GET", "/api/v1/tenants/..%2F..%2F..%2Fetc%2Fpasswd", op, nil, nil, 404, "not_found"},
		{"SQL in tenant id", "GET", "/api/v1/tenants/" + url.PathEscape(`' OR 1=1 --`), op, nil, nil, 404, "not_found"},
		{"SQL in source id", "GET", tA + "/sources/" + url.PathEscape(`x' UNION SELECT * FROM source_credentials --`), ta, nil, nil, 404, "not_found"},
		{"SQL in cursor", "GET", "/api/v1/tenants?cursor=" + url.QueryEscape(`' OR 1=1`), op, nil, nil, 400, "invalid"},
		{"limit not a number", "GET", "/api/v1/tenants?limit=" + url.QueryEscape("10; DROP TABLE tenants"), op, nil, nil, 400, "invalid"},
		{"SQL in email-events filters", "GET", tA + "/email-events?recipients=" + sqlish, ta, nil, nil, 200, ""},
		{"SQL in deliveries status", "GET", tA + "/deliveries?status=" + url.QueryEscape("dead' OR '1'='1"), ta, nil, nil, 400, "invalid"},
		{"huge per_page", "GET", tA + "/email-events?per_page=99999999999999999999", ta, nil, nil, 400, "invalid"},

		// SparkPost hook.
		{"hook: no credentials", "POST", hook, "", `[]`, nil, 401, "unauthorized"},
		{"hook: forged basic", "POST", hook, "", `[]`, []string{"Authorization", "Basic " + strings.Repeat("A", 40)}, 401, "unauthorized"},
		{"hook: basic not base64", "POST", hook, "", `[]`, []string{"Authorization", "Basic %%%"}, 401, "unauthorized"},
		{"hook: forged bearer on oauth source", "POST", "/hooks/sparkpost/" + oauthSrc.ID, forged, `[]`, nil, 401, "unauthorized"},
		{"hook: admin token on oauth source", "POST", "/hooks/sparkpost/" + oauthSrc.ID, op, `[]`, nil, 401, "unauthorized"},
		{"hook: path traversal id", "POST", "/hooks/sparkpost/..%2F..%2Fadmin", "", `[]`, []string{"Authorization", good}, 404, "not_found"},
		{"hook: malformed JSON", "POST", hook, "", `[{"msys": {"message_event": {`, []string{"Authorization", good}, 400, "invalid"},
		{"hook: scalar body", "POST", hook, "", `42`, []string{"Authorization", good}, 400, "invalid"},
		{"hook: string body", "POST", hook, "", `"[]"`, []string{"Authorization", good}, 400, "invalid"},
		{"hook: empty body", "POST", hook, "", ``, []string{"Authorization", good, "Content-Type", "application/json"}, 400, "invalid"},
		{"hook: invalid UTF-8", "POST", hook, "", []byte("[{\"msys\":{\"message_event\":{\"type\":\"delivery\",\"rcpt_to\":\"\xff\"}}}]"), []string{"Authorization", good}, 400, "invalid"},
		{"hook: raw NUL", "POST", hook, "", []byte("[{\"msys\":{}}\x00]"), []string{"Authorization", good}, 400, "invalid"},
		{"hook: form content type", "POST", hook, "", `[]`, []string{"Authorization", good, "Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_type"},
		{"hook: 100-level nesting is data", "POST", hook, "", `[{"msys":{"message_event":{"type":"delivery","event_id":"deep","x":` + nested + `}}}]`, []string{"Authorization", good}, 200, ""},
		{"hook: 10 MB string is data", "POST", hook, "", `[{"msys":{"message_event":{"type":"delivery","event_id":"big","x":` + tenMB + `}}}]`, []string{"Authorization", good}, 200, ""},
		{"hook: duplicate keys", "POST", hook, "", `[{"msys":{"message_event":{"type":"delivery","type":"open","event_id":"dup"}}}]`, []string{"Authorization", good}, 200, ""},
		{"hook: elements of every type", "POST", hook, "", `[1, "x", null, true, [], {}, {"msys": 5}, {"msys": {"a": 1, "b": 2}}]`, []string{"Authorization", good}, 200, ""},
		{"hook: long batch id", "POST", hook, "", `[{"msys":{"message_event":{"type":"delivery","event_id":"l"}}}]`, []string{"Authorization", good, "X-MessageSystems-Batch-ID", strings.Repeat("b", 300)}, 400, "invalid"},

		// Segment hook.
		{"segment: no key", "POST", seg, "", `{"type":"identify","userId":"u"}`, nil, 401, "unauthorized"},
		{"segment: wrong key", "POST", seg, "sbk_wrong", `{"type":"identify","userId":"u"}`, nil, 401, "unauthorized"},
		{"segment: tenant JWT as key", "POST", seg, ta, `{"type":"identify","userId":"u"}`, nil, 401, "unauthorized"},
		{"segment: missing signature", "POST", seg, "", `{"type":"identify","userId":"u"}`, key, 401, "unauthorized"},
		{"segment: forged signature", "POST", seg, "", `{"type":"identify","userId":"u"}`, append([]string{"X-Signature", strings.Repeat("0", 40)}, key...), 401, "unauthorized"},
		{"segment: unknown destination", "POST", "/hooks/segment/dst_aaaaaaaaaaaaaaaa", "", `{}`, key, 404, "not_found"},
		{"segment: SQL in destination id", "POST", "/hooks/segment/" + url.PathEscape(`dst' OR 1=1--`), "", `{}`, key, 404, "not_found"},
		{"segment: malformed JSON", "POST", seg, "", `{"type":`, signed(`{"type":`), 400, "invalid"},
		{"segment: invalid UTF-8", "POST", seg, "", []byte("{\"type\":\"track\",\"event\":\"\xff\"}"), signed("{\"type\":\"track\",\"event\":\"\xff\"}"), 400, "invalid"},
		{"segment: 10,001 messages", "POST", seg, "", manyMsgs, signed(manyMsgs[1 : strings.Index(manyMsgs, "},")+1]), 413, "body_too_large"},
		{"segment: unknown type is ignored", "POST", seg, "", `{"type":"teleport","userId":"u"}`, signed(`{"type":"teleport","userId":"u"}`), 200, ""},
		{"segment: traits not an object is ignored", "POST", seg, "", `{"type":"identify","userId":"u","traits":[1]}`, signed(`{"type":"identify","userId":"u","traits":[1]}`), 200, ""},
		{"segment: XML", "POST", seg, "", `<x/>`, signed(`<x/>`, "Content-Type", "application/xml"), 400, "invalid"},
		{"workflow: url not http", "POST", tA + "/workflows", ta, `{"name":"w","event":"E","url":"file:///etc/passwd"}`, nil, 400, "invalid"},
		{"workflow: event not a string", "POST", tA + "/workflows", ta, `{"name":"w","event":["E"],"url":"https://x.io"}`, nil, 400, "invalid"},
		{"destination: bad channel_policy", "POST", tA + "/destinations", ta, `{"name":"d","channel_policy":"merge"}`, nil, 400, "invalid"},
		{"destination: bad hold_for", "POST", tA + "/destinations", ta, `{"name":"d","hold_for":"forever"}`, nil, 400, "invalid"},
		{"users: path traversal", "GET", tA + "/users/..%2F..%2Fetc", ta, nil, nil, 404, "not_found"},

		// OAuth token endpoint.
		{"oauth: no credentials", "POST", "/oauth/token", "", "grant_type=client_credentials", []string{"Content-Type", "application/x-www-form-urlencoded"}, 401, "unauthorized"},
		{"oauth: SQL in client_id", "POST", "/oauth/token", "", "client_id=" + url.QueryEscape("' OR 1=1 --") + "&client_secret=x", []string{"Content-Type", "application/x-www-form-urlencoded"}, 401, "unauthorized"},
		{"oauth: malformed JSON", "POST", "/oauth/token", "", `{"client_id": `, nil, 400, "invalid"},
		{"oauth: XML", "POST", "/oauth/token", "", `<x/>`, []string{"Content-Type", "text/xml"}, 415, "unsupported_type"},
		{"oauth: basic-auth source credentials", "POST", "/oauth/token", "", "grant_type=client_credentials", []string{"Content-Type", "application/x-www-form-urlencoded", "Authorization", good}, 401, "unauthorized"},
	}
	if len(cases) < 40 {
		t.Fatalf("the catalogue has %d cases; keep at least 40", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, _ := app.Do(c.method, c.url, c.token, c.body, c.headers...)
			if status >= 500 {
				t.Fatalf("%d: %s", status, body)
			}
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, truncateBody(body))
			}
			if c.code != "" {
				var e struct {
					Error struct{ Code, Message string }
				}
				if json.Unmarshal(body, &e) != nil || e.Error.Code != c.code || e.Error.Message == "" {
					t.Fatalf("error body %s; want code %q with a message", truncateBody(body), c.code)
				}
			}
		})
	}
	if status, _, _ := app.Do("GET", "/readyz", "", nil); status != 200 {
		t.Fatalf("server not ready after the catalogue: %d", status)
	}
}

func truncateBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
