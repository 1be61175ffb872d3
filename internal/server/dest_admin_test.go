package server_test

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDestinationAdminScenarios(t *testing.T) {
	app := newDestApp(t)
	a, ta := app.T, app.Token
	b := app.Tenant("Other")
	tb := app.TenantToken(b)
	op := app.OperatorToken()
	tA, tB := "/api/v1/tenants/"+a.ID, "/api/v1/tenants/"+b.ID

	d := app.destination(`{"name": "Segment A", "hold_for": "1m"}`)
	app.mustHook(d, `[{"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}},
		{"type": "track", "userId": "u1", "event": "E"}]`)
	_, body, _ := app.Do("POST", tB+"/destinations", tb, `{"name": "Segment B"}`)
	var bd createdDestination
	json.Unmarshal(body, &bd)
	app.Secret(bd.APIKey)
	app.Secret(bd.SharedSecret)
	_, body, _ = app.Do("POST", tA+"/workflows", ta, `{"name": "welcome", "event": "E", "url": "https://example.com/hook"}`)
	var wf struct{ ID, Secret string }
	json.Unmarshal(body, &wf)
	app.Secret(wf.Secret)
	_, body, _ = app.Do("POST", tB+"/workflows", tb, `{"name": "b", "event": "E", "url": "https://example.com/hook"}`)
	var bwf struct{ ID, Secret string }
	json.Unmarshal(body, &bwf)
	app.Secret(bwf.Secret)

	dA, wA := tA+"/destinations/"+d.ID, tA+"/workflows/"+wf.ID
	scenarios := []Scenario{
		// Every route needs a token.
		{Name: "create destination: no token", Method: "POST", URL: tA + "/destinations", Body: `{"name": "x"}`, ExpectedStatus: 401},
		{Name: "list destinations: no token", Method: "GET", URL: tA + "/destinations", ExpectedStatus: 401},
		{Name: "get destination: no token", Method: "GET", URL: dA, ExpectedStatus: 401},
		{Name: "patch destination: no token", Method: "PATCH", URL: dA, Body: `{}`, ExpectedStatus: 401},
		{Name: "delete destination: no token", Method: "DELETE", URL: dA, ExpectedStatus: 401},
		{Name: "rotate: no token", Method: "POST", URL: dA + "/rotate", ExpectedStatus: 401},
		{Name: "replay: no token", Method: "POST", URL: dA + "/replay", Body: `{}`, ExpectedStatus: 401},
		{Name: "messages: no token", Method: "GET", URL: dA + "/messages", ExpectedStatus: 401},
		{Name: "users: no token", Method: "GET", URL: tA + "/users", ExpectedStatus: 401},
		{Name: "user: no token", Method: "GET", URL: tA + "/users/u1", ExpectedStatus: 401},
		{Name: "events: no token", Method: "GET", URL: tA + "/users/u1/events", ExpectedStatus: 401},
		{Name: "create workflow: no token", Method: "POST", URL: tA + "/workflows", Body: `{}`, ExpectedStatus: 401},
		{Name: "list workflows: no token", Method: "GET", URL: tA + "/workflows", ExpectedStatus: 401},
		{Name: "get workflow: no token", Method: "GET", URL: wA, ExpectedStatus: 401},
		{Name: "patch workflow: no token", Method: "PATCH", URL: wA, Body: `{}`, ExpectedStatus: 401},
		{Name: "delete workflow: no token", Method: "DELETE", URL: wA, ExpectedStatus: 401},
		{Name: "the API key is not an admin token", Method: "GET", URL: tA + "/destinations", Token: d.APIKey, ExpectedStatus: 401},

		// Another tenant's paths and ids: 404, exactly like missing ones.
		{Name: "B lists A's destinations", Method: "GET", URL: tA + "/destinations", Token: tb, ExpectedStatus: 404, NotExpected: []string{d.ID}},
		{Name: "B reads A's destination via A's path", Method: "GET", URL: dA, Token: tb, ExpectedStatus: 404},
		{Name: "B reads A's destination via B's path", Method: "GET", URL: tB + "/destinations/" + d.ID, Token: tb, ExpectedStatus: 404},
		{Name: "B patches A's destination", Method: "PATCH", URL: tB + "/destinations/" + d.ID, Token: tb, Body: `{"name": "x"}`, ExpectedStatus: 404},
		{Name: "B deletes A's destination", Method: "DELETE", URL: tB + "/destinations/" + d.ID, Token: tb, ExpectedStatus: 404},
		{Name: "B rotates A's destination", Method: "POST", URL: tB + "/destinations/" + d.ID + "/rotate", Token: tb, ExpectedStatus: 404},
		{Name: "B replays A's destination", Method: "POST", URL: tB + "/destinations/" + d.ID + "/replay", Token: tb, Body: `{"dry_run": true}`, ExpectedStatus: 404},
		{Name: "B reads A's messages", Method: "GET", URL: tB + "/destinations/" + d.ID + "/messages", Token: tb, ExpectedStatus: 404},
		{Name: "B reads A's user", Method: "GET", URL: tB + "/users/u1", Token: tb, ExpectedStatus: 404, NotExpected: []string{"u1@example.com"}},
		{Name: "B reads A's user's events", Method: "GET", URL: tB + "/users/u1/events", Token: tb, ExpectedStatus: 404},
		{Name: "B lists A's users", Method: "GET", URL: tA + "/users", Token: tb, ExpectedStatus: 404},
		{Name: "B finds no user of A by email", Method: "GET", URL: tB + "/users?email=u1@example.com", Token: tb, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":0`}},
		{Name: "B reads A's workflow", Method: "GET", URL: tB + "/workflows/" + wf.ID, Token: tb, ExpectedStatus: 404},
		{Name: "B patches A's workflow", Method: "PATCH", URL: tB + "/workflows/" + wf.ID, Token: tb, Body: `{"name": "x"}`, ExpectedStatus: 404},
		{Name: "B deletes A's workflow", Method: "DELETE", URL: tB + "/workflows/" + wf.ID, Token: tb, ExpectedStatus: 404},
		{Name: "A does not list B's workflow", Method: "GET", URL: tA + "/workflows", Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":1`, wf.ID}, NotExpected: []string{bwf.ID}},
		{Name: "garbage destination id", Method: "GET", URL: tA + "/destinations/..%2F..%2Fetc", Token: ta, ExpectedStatus: 404},
		{Name: "missing destination", Method: "GET", URL: tA + "/destinations/dst_aaaaaaaaaaaaaaaa", Token: ta, ExpectedStatus: 404},
		{Name: "missing user", Method: "GET", URL: tA + "/users/nobody", Token: ta, ExpectedStatus: 404},
		{Name: "missing user's events", Method: "GET", URL: tA + "/users/nobody/events", Token: ta, ExpectedStatus: 404},
		{Name: "missing workflow", Method: "GET", URL: tA + "/workflows/wfl_aaaaaaaaaaaaaaaa", Token: ta, ExpectedStatus: 404},

		// Bad input: 400 naming the field.
		{Name: "create: no name", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `{}`, ExpectedStatus: 400, ExpectedContent: []string{"name: is required"}},
		{Name: "create: unknown field", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `{"name": "x", "prefix": true}`, ExpectedStatus: 400, ExpectedContent: []string{"prefix: unknown field"}},
		{Name: "create: prefix_events not a bool", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `{"name": "x", "prefix_events": "yes"}`, ExpectedStatus: 400, ExpectedContent: []string{"prefix_events: must be true or false"}},
		{Name: "create: bad hold_for", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `{"name": "x", "hold_for": "soon"}`, ExpectedStatus: 400, ExpectedContent: []string{"hold_for:"}},
		{Name: "create: hold_for too long", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `{"name": "x", "hold_for": "100h"}`, ExpectedStatus: 400, ExpectedContent: []string{"hold_for:"}},
		{Name: "create: bad policy", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `{"name": "x", "channel_policy": "merge"}`, ExpectedStatus: 400, ExpectedContent: []string{"channel_policy:"}},
		{Name: "create: unknown channel slot", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `{"name": "x", "channel_map": {"$fax": "fax"}}`, ExpectedStatus: 400, ExpectedContent: []string{"channel_map:", "$fax"}},
		{Name: "create: channel_map not an object", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `{"name": "x", "channel_map": ["email"]}`, ExpectedStatus: 400, ExpectedContent: []string{"channel_map: must be an object"}},
		{Name: "create: unknown preference", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `{"name": "x", "preference_map": {"$currency": "c"}}`, ExpectedStatus: 400, ExpectedContent: []string{"preference_map:"}},
		{Name: "create: not JSON", Method: "POST", URL: tA + "/destinations", Token: ta, Body: `name=x`, Headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, ExpectedStatus: 415},
		{Name: "patch: empty name", Method: "PATCH", URL: dA, Token: ta, Body: `{"name": " "}`, ExpectedStatus: 400, ExpectedContent: []string{"name: must not be empty"}},
		{Name: "patch: require_signature not a bool", Method: "PATCH", URL: dA, Token: ta, Body: `{"require_signature": 1}`, ExpectedStatus: 400, ExpectedContent: []string{"require_signature: must be true or false"}},
		{Name: "replay: bad from", Method: "POST", URL: dA + "/replay", Token: ta, Body: `{"from": "yesterday"}`, ExpectedStatus: 400, ExpectedContent: []string{"from:"}},
		{Name: "replay: to before from", Method: "POST", URL: dA + "/replay", Token: ta, Body: `{"from": "2025-01-02T00:00:00Z", "to": "2025-01-01T00:00:00Z"}`, ExpectedStatus: 400, ExpectedContent: []string{"to:"}},
		{Name: "replay: bad type", Method: "POST", URL: dA + "/replay", Token: ta, Body: `{"types": ["click"]}`, ExpectedStatus: 400, ExpectedContent: []string{"types:", "click"}},
		{Name: "replay: dry_run not a bool", Method: "POST", URL: dA + "/replay", Token: ta, Body: `{"dry_run": "yes"}`, ExpectedStatus: 400, ExpectedContent: []string{"dry_run: must be true or false"}},
		{Name: "messages: bad status", Method: "GET", URL: dA + "/messages?status=lost", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"status:"}},
		{Name: "messages: bad type", Method: "GET", URL: dA + "/messages?type=click", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"type:"}},
		{Name: "messages: bad cursor", Method: "GET", URL: dA + "/messages?cursor=zzz", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"cursor:"}},
		{Name: "messages: bad limit", Method: "GET", URL: dA + "/messages?limit=0", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"limit:"}},
		{Name: "users: bad phone", Method: "GET", URL: tA + "/users?phone=12", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"phone:"}},
		{Name: "users: two filters", Method: "GET", URL: tA + "/users?email=a@b.co&channel_value=x", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"at most one"}},
		{Name: "users: bad limit", Method: "GET", URL: tA + "/users?limit=5000", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"limit:"}},
		{Name: "events: bad cursor", Method: "GET", URL: tA + "/users/u1/events?cursor=zzz", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"cursor:"}},
		{Name: "workflow: no name", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"event": "E", "url": "https://example.com"}`, ExpectedStatus: 400, ExpectedContent: []string{"name: is required"}},
		{Name: "workflow: no event", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w", "url": "https://example.com"}`, ExpectedStatus: 400, ExpectedContent: []string{"event: is required"}},
		{Name: "workflow: blank event", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w", "event": "  ", "url": "https://example.com"}`, ExpectedStatus: 400, ExpectedContent: []string{"event: must not be empty"}},
		{Name: "workflow: no url", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w", "event": "E"}`, ExpectedStatus: 400, ExpectedContent: []string{"url: is required"}},
		{Name: "workflow: ftp url", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w", "event": "E", "url": "ftp://example.com"}`, ExpectedStatus: 400, ExpectedContent: []string{"url:"}},
		{Name: "workflow: relative url", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w", "event": "E", "url": "/hook"}`, ExpectedStatus: 400, ExpectedContent: []string{"url:"}},
		{Name: "workflow: url with password", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w", "event": "E", "url": "https://u:p@example.com"}`, ExpectedStatus: 400, ExpectedContent: []string{"url:"}},
		{Name: "workflow: short secret", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w", "event": "E", "url": "https://example.com", "secret": "short"}`, ExpectedStatus: 400, ExpectedContent: []string{"secret:"}},
		{Name: "workflow: url not a string", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w", "event": "E", "url": 7}`, ExpectedStatus: 400, ExpectedContent: []string{"url: must be a string"}},
		{Name: "workflow: unknown field", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w", "event": "E", "url": "https://example.com", "method": "PUT"}`, ExpectedStatus: 400, ExpectedContent: []string{"method: unknown field"}},
		{Name: "workflow patch: bad url", Method: "PATCH", URL: wA, Token: ta, Body: `{"url": "mailto:x@example.com"}`, ExpectedStatus: 400, ExpectedContent: []string{"url:"}},

		// What works.
		{Name: "list destinations", Method: "GET", URL: tA + "/destinations", Token: ta, ExpectedStatus: 200,
			ExpectedContent: []string{`"total_count":1`, d.ID, `"webhook_url":"http://switchboard.test/hooks/segment/` + d.ID, `"api_key_hint":"`},
			NotExpected:     []string{d.APIKey, d.SharedSecret, bd.ID}},
		{Name: "get destination", Method: "GET", URL: dA, Token: ta, ExpectedStatus: 200,
			ExpectedContent: []string{`"hold_for":"1m"`, `"channel_policy":"append"`, `"$slack.email":"slackEmail"`, `"shared_secret_hint":"`},
			NotExpected:     []string{d.APIKey, d.SharedSecret, `"api_key":`, `"shared_secret":`}},
		{Name: "operator reads it too", Method: "GET", URL: dA, Token: op, ExpectedStatus: 200, ExpectedContent: []string{d.ID}},
		{Name: "patch destination", Method: "PATCH", URL: dA, Token: ta, Body: `{"name": "Renamed", "channel_map": {"$whatsapp": null, "$sms": "mobile"}}`, ExpectedStatus: 200,
			ExpectedContent: []string{`"name":"Renamed"`, `"$sms":"mobile"`, `"$email":"email"`}, NotExpected: []string{`"$whatsapp"`}},
		{Name: "messages", Method: "GET", URL: dA + "/messages", Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":2`, `"status":"applied"`, `"type":"track"`}},
		{Name: "messages by type", Method: "GET", URL: dA + "/messages?type=identify", Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":1`}},
		{Name: "users", Method: "GET", URL: tA + "/users", Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":1`, `"distinct_id":"u1"`}},
		{Name: "user", Method: "GET", URL: tA + "/users/u1", Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"$email":["u1@example.com"]`, `"created_at"`}},
		{Name: "user events", Method: "GET", URL: tA + "/users/u1/events", Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":1`, `"name":"E"`, `"destination_id":"` + d.ID}},
		{Name: "replay dry run", Method: "POST", URL: dA + "/replay", Token: ta, Body: `{"dry_run": true}`, ExpectedStatus: 200, ExpectedContent: []string{`"dry_run":true`, `"messages":2`}},
		{Name: "replay without a body", Method: "POST", URL: dA + "/replay", Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"dry_run":false`}},
		{Name: "get workflow", Method: "GET", URL: wA, Token: ta, ExpectedStatus: 200, ExpectedContent: []string{`"event":"E"`, `"secret_hint":"`}, NotExpected: []string{wf.Secret, `"secret":`}},
		{Name: "patch workflow", Method: "PATCH", URL: wA, Token: ta, Body: `{"event": "segment : E"}`, ExpectedStatus: 200, ExpectedContent: []string{`"event":"segment : E"`, `"url":"https://example.com/hook"`}},
		{Name: "create workflow with own secret", Method: "POST", URL: tA + "/workflows", Token: ta, Body: `{"name": "w2", "event": "E", "url": "http://127.0.0.1:9/x", "secret": "my-own-secret-0123456789"}`,
			ExpectedStatus: 201, ExpectedContent: []string{`"secret_hint":"…6789"`}, NotExpected: []string{`"secret":`}},
		{Name: "delete workflow", Method: "DELETE", URL: wA, Token: ta, ExpectedStatus: 204},
		{Name: "deleted workflow", Method: "GET", URL: wA, Token: ta, ExpectedStatus: 404},
		{Name: "delete destination", Method: "DELETE", URL: dA, Token: ta, ExpectedStatus: 204},
		{Name: "deleted destination", Method: "GET", URL: dA, Token: ta, ExpectedStatus: 404},
		{Name: "profiles outlive the destination", Method: "GET", URL: tA + "/users/u1", Token: ta, ExpectedStatus: 200},
	}
	for _, sc := range scenarios {
		sc.Run(t, app.TestApp)
	}
}

func TestDestinationCreateShowsSecretsOnce(t *testing.T) {
	app := newDestApp(t)
	status, body, _ := app.Do("POST", app.path("/destinations"), app.Token, `{"name": "Segment", "prefix_events": true, "require_signature": true, "hold_for": "90s"}`)
	var d struct {
		ID, Name, WebhookURL, APIKey, SharedSecret string
	}
	out := map[string]any{}
	if status != 201 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("%d %s", status, body)
	}
	d.ID, _ = out["id"].(string)
	d.APIKey, _ = out["api_key"].(string)
	d.SharedSecret, _ = out["shared_secret"].(string)
	app.Secret(d.APIKey)
	app.Secret(d.SharedSecret)
	if !strings.HasPrefix(d.ID, "dst_") || !strings.HasPrefix(d.APIKey, "sbk_") || !strings.HasPrefix(d.SharedSecret, "sbs_") ||
		out["webhook_url"] != "http://switchboard.test/hooks/segment/"+d.ID || out["prefix_events"] != true || out["require_signature"] != true ||
		out["hold_for"] != "1m30s" || out["api_key_hint"] != "…"+d.APIKey[len(d.APIKey)-4:] {
		t.Fatalf("create: %s", body)
	}
	// Stored hashed and sealed, never in the clear.
	for _, q := range []string{`SELECT api_key_hash || secret_hint FROM destination_keys`, `SELECT CAST(secret_enc AS TEXT) FROM destination_keys`} {
		var v string
		if err := app.DB.Reader().QueryRow(q).Scan(&v); err != nil || strings.Contains(v, d.APIKey) || strings.Contains(v, d.SharedSecret) {
			t.Fatalf("a secret is stored in the clear (%v)", err)
		}
	}
}
