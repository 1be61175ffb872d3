package server_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

// requestLine waits for the request log line of the request sent with X-Request-Id id (the line is
// written after the answer, so it may follow the response by a moment) and returns its fields.
func requestLine(t *testing.T, app *TestApp, id string) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, "the request log line of "+id, func() bool {
		sc := bufio.NewScanner(strings.NewReader(app.Logs.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil && l["msg"] == "request" && l["request_id"] == id {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

// TestRequestLogNamesTenantSourceDestination: a request log line says whose request it was —
// tenant_id, and source_id or destination_id where the route names one — so that one tenant's
// trouble can be found in the log; a path segment that is no id never reaches the log.
func TestRequestLogNamesTenantSourceDestination(t *testing.T) {
	a := newDestApp(t)
	src := a.createSource(a.Token, a.T.ID, `{"name": "prod"}`)
	dst := a.destination(`{"name": "seg"}`)
	spAuth := basicAuth(src.Credentials.Username, src.Credentials.Password)
	batch := `[{"msys":{"message_event":{"type":"delivery","event_id":"1","timestamp":"1460989507","rcpt_to":"a@example.com"}}}]`
	cases := []struct {
		name, method, path, token, body string
		headers                         []string
		status                          int
		want                            map[string]string // "" : the key must be absent
	}{
		{name: "source admin", method: "GET", path: a.path("/sources/" + src.ID), token: a.Token, status: 200,
			want: map[string]string{"tenant_id": a.T.ID, "source_id": src.ID, "destination_id": "", "route": "/api/v1/tenants/:tid/sources/:sid"}},
		{name: "batch receipt", method: "GET", path: a.path("/sources/" + src.ID + "/batches/nope"), token: a.Token, status: 404,
			want: map[string]string{"tenant_id": a.T.ID, "source_id": src.ID}},
		{name: "destination admin", method: "GET", path: a.path("/destinations/" + dst.ID), token: a.Token, status: 200,
			want: map[string]string{"tenant_id": a.T.ID, "destination_id": dst.ID, "source_id": ""}},
		{name: "tenant list", method: "GET", path: a.path("/sources"), token: a.Token, status: 200,
			want: map[string]string{"tenant_id": a.T.ID, "source_id": "", "destination_id": ""}},
		{name: "other tenant's path", method: "GET", path: "/api/v1/tenants/ten_aaaaaaaaaaaaaaaa/sources/" + src.ID, token: a.Token, status: 404,
			want: map[string]string{"tenant_id": ""}},
		{name: "sparkpost hook", method: "POST", path: "/hooks/sparkpost/" + src.ID, body: batch, headers: []string{"Authorization", spAuth}, status: 200,
			want: map[string]string{"tenant_id": a.T.ID, "source_id": src.ID, "route": "/hooks/sparkpost/:sid"}},
		{name: "sparkpost hook, garbage id", method: "POST", path: "/hooks/sparkpost/src_%27%20OR%201%3D1", body: batch, headers: []string{"Authorization", spAuth}, status: 404,
			want: map[string]string{"source_id": "", "tenant_id": ""}},
		{name: "segment hook", method: "POST", path: "/hooks/segment/" + dst.ID, token: dst.APIKey,
			body: `{"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"email": "u1@example.com"}}`, status: 200,
			want: map[string]string{"tenant_id": a.T.ID, "destination_id": dst.ID, "route": "/hooks/segment/:did"}},
		{name: "segment hook, unknown destination", method: "POST", path: "/hooks/segment/dst_aaaaaaaaaaaaaaaa", token: dst.APIKey, body: `{}`, status: 404,
			want: map[string]string{"destination_id": "dst_aaaaaaaaaaaaaaaa", "tenant_id": ""}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "log-test-" + string(rune('a'+i))
			var body any
			if tc.body != "" {
				body = tc.body
			}
			status, resp, _ := a.Do(tc.method, tc.path, tc.token, body, append([]string{"X-Request-Id", id}, tc.headers...)...)
			if status != tc.status {
				t.Fatalf("%s %s: %d %s; want %d", tc.method, tc.path, status, resp, tc.status)
			}
			line := requestLine(t, a.TestApp, id)
			for k, want := range tc.want {
				got, ok := line[k]
				if want == "" && ok {
					t.Errorf("%s = %v; want no %s", k, got, k)
				} else if want != "" && got != want {
					t.Errorf("%s = %v; want %s (line %v)", k, got, want, line)
				}
			}
		})
	}
}
