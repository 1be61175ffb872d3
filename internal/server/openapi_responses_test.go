package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/switchboard-hub/switchboard/api"
	"github.com/switchboard-hub/switchboard/internal/fakesegment"
)

// specCheck holds real exchanges to api/openapi.yaml: every answer must have a status the
// matched operation lists and a body its schema accepts, and every request the server accepted
// must be one the spec accepts.
type specCheck struct {
	t      *testing.T
	errorf func(format string, args ...any) // t.Errorf, but for the test of the check itself
	doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[string]int // "operationId status" → answers checked
}

func newSpecCheck(t *testing.T) *specCheck {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	doc.Servers = nil // match requests on their paths, whatever host the test server has
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	return &specCheck{t: t, errorf: t.Errorf, doc: doc, router: router, seen: map[string]int{}}
}

// attach makes every request of app.Do go through the check.
func (sc *specCheck) attach(app *TestApp) {
	client := app.HTTP.Client()
	client.Transport = &specTransport{base: client.Transport, check: sc}
}

// specTransport hands each exchange to its specCheck before the caller sees the answer.
type specTransport struct {
	base  http.RoundTripper
	check *specCheck
}

func (tr *specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tr.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	tr.check.exchange(req, resp.StatusCode, resp.Header, body)
	return resp, nil
}

// exchange validates one answer (and, when the server accepted it, its request).
func (sc *specCheck) exchange(req *http.Request, status int, header http.Header, body []byte) {
	where := req.Method + " " + req.URL.RequestURI()
	route, params, err := sc.router.FindRoute(req)
	if err != nil {
		sc.errorf("%s: answered %d, but the spec has no such operation: %v", where, status, err)
		return
	}
	op := route.Operation.OperationID
	sc.mu.Lock()
	sc.seen[fmt.Sprintf("%s %d", op, status)]++
	sc.mu.Unlock()
	if header.Get("X-Request-Id") == "" {
		sc.errorf("%s (operation %s): answer %d has no X-Request-Id", where, op, status)
	}

	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: requestOptions()}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	opts.WithCustomSchemaErrorFunc(schemaReason)
	if err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: opts,
	}); err != nil {
		sc.errorf("%s (operation %s): answer %d does not match the spec: %v\nbody: %.600s", where, op, status, err, body)
	}
	if status < 200 || status > 299 {
		return
	}
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			sc.errorf("%s: the request body cannot be read again: %v", where, err)
			return
		}
		r := req.Clone(ctx)
		r.Body = b
		in.Request = r
	}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		sc.errorf("%s (operation %s): the server answered %d to a request the spec refuses: %v", where, op, status, err)
	}
}

// requestOptions validate a request's parameters and body; credentials are not the spec's to check.
func requestOptions() *openapi3filter.Options {
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	opts.WithCustomSchemaErrorFunc(schemaReason)
	return opts
}

// schemaReason keeps a schema error to where and why, without the schema and value dumps.
func schemaReason(err *openapi3.SchemaError) string {
	if p := err.JSONPointer(); len(p) > 0 && !strings.Contains(err.Reason, "'/") {
		return "/" + strings.Join(p, "/") + ": " + err.Reason
	}
	return err.Reason
}

// workflowPOST validates a body Switchboard POSTed to a workflow URL against webhooks.workflowEvent.
func (sc *specCheck) workflowPOST(req *http.Request, body []byte) {
	item := sc.doc.Webhooks["workflowEvent"]
	if item == nil || item.Post == nil {
		sc.errorf("api/openapi.yaml has no webhooks.workflowEvent.post")
		return
	}
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	err := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: r, Route: &routers.Route{Spec: sc.doc, Path: "/", PathItem: item, Method: http.MethodPost, Operation: item.Post},
		Options: requestOptions(),
	})
	if err != nil {
		sc.errorf("workflow POST (webhook workflowEvent) does not match the spec: %v\nbody: %.600s", err, body)
	}
}

// covered fails the test for each "operationId status" that no checked answer had, so that the
// check cannot pass by looking at nothing.
func (sc *specCheck) covered(want ...string) {
	sc.t.Helper()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	n := 0
	for _, c := range sc.seen {
		n += c
	}
	sc.t.Logf("%d answers of %d kinds (operation and status) checked against api/openapi.yaml", n, len(sc.seen))
	var missing []string
	for _, w := range want {
		if sc.seen[w] == 0 {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		var got []string
		for k := range sc.seen {
			got = append(got, k)
		}
		sort.Strings(got)
		sc.errorf("answers never checked against the spec: %s\nchecked: %s", strings.Join(missing, ", "), strings.Join(got, ", "))
	}
}

// call sends a request through app.Do (and so through the spec check), requires status and
// decodes a JSON answer into out when out is not nil.
func call(t *testing.T, app *TestApp, want int, out any, method, path, token string, body any, headers ...string) []byte {
	t.Helper()
	status, b, _ := app.Do(method, path, token, body, headers...)
	if status != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return b
}

var lastErrorShape = regexp.MustCompile(`^[1-5][0-9][0-9] .+`)

// TestSparkPostResponsesMatchOpenAPI drives direction A and the tenant admin API end to end, with
// the processor, the Segment sender (to a fake Segment) and the back-fill runner running, and
// checks every answer against the spec.
func TestSparkPostResponsesMatchOpenAPI(t *testing.T) {
	sc := newSpecCheck(t)
	rig := newBackfillRig(t)
	app := rig.app
	sc.attach(app)
	op := app.OperatorToken()

	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"} {
		call(t, app, 200, nil, "GET", p, "", nil)
	}

	// Tenants and tokens, as the operator sets them up.
	var tenant struct{ ID string }
	call(t, app, 201, &tenant, "POST", "/api/v1/tenants", op, `{"name": "Acme & Co"}`)
	call(t, app, 400, nil, "POST", "/api/v1/tenants", op, `{}`)
	call(t, app, 401, nil, "POST", "/api/v1/tenants", "", `{"name": "x"}`)
	call(t, app, 415, nil, "POST", "/api/v1/tenants", op, `name=x`, "Content-Type", "application/x-www-form-urlencoded")
	call(t, app, 200, nil, "GET", "/api/v1/tenants?limit=1", op, nil)
	base := "/api/v1/tenants/" + tenant.ID
	call(t, app, 200, nil, "GET", base, op, nil)
	call(t, app, 404, nil, "GET", "/api/v1/tenants/ten_aaaaaaaaaaaaaaaa", op, nil)
	call(t, app, 200, nil, "PATCH", base, op, `{"name": "Acme"}`)
	var minted struct{ Token string }
	call(t, app, 201, &minted, "POST", base+"/tokens", op, `{"ttl": "2h"}`)
	tok := app.Secret(minted.Token)
	call(t, app, 403, nil, "GET", "/api/v1/tenants", tok, nil)
	call(t, app, 400, nil, "POST", base+"/tokens", op, `{"ttl": "forever"}`)

	// The Segment write key, answered with the lane's state.
	call(t, app, 400, nil, "PUT", base+"/segment", tok, `{}`)
	call(t, app, 200, nil, "PUT", base+"/segment", tok, map[string]any{"write_key": rig.writeKey, "endpoint": rig.segment.URL})
	call(t, app, 200, nil, "GET", base+"/segment", tok, nil)

	// Sources: basic (the hook's) and oauth2 (its token endpoint).
	src := app.createSource(tok, tenant.ID, `{"name": "prod", "events": ["delivery", "click", "initial_open", "bounce"]}`)
	one := base + "/sources/" + src.ID
	call(t, app, 200, nil, "GET", one, tok, nil)
	call(t, app, 200, nil, "GET", base+"/sources", tok, nil)
	call(t, app, 200, nil, "PATCH", one, tok, `{"name": "prod (eu)", "user_id_keys": ["user_id"]}`)
	call(t, app, 400, nil, "PATCH", one, tok, `{"anonymous_id": "random"}`)
	call(t, app, 404, nil, "GET", base+"/sources/src_aaaaaaaaaaaaaaaa", tok, nil)
	var rotated createdSource
	call(t, app, 200, &rotated, "POST", one+"/rotate", tok, nil)
	app.Secret(rotated.Credentials.Password)
	oauth := app.createSource(tok, tenant.ID, `{"name": "oauth", "auth": "oauth2"}`)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {oauth.Credentials.ClientID}, "client_secret": {oauth.Credentials.ClientSecret}}
	var issued struct {
		AccessToken string `json:"access_token"`
	}
	call(t, app, 200, &issued, "POST", "/oauth/token", "", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	app.Secret(issued.AccessToken)
	call(t, app, 401, nil, "POST", "/oauth/token", "", url.Values{"client_id": {oauth.Credentials.ClientID}, "client_secret": {"nope"}}.Encode(),
		"Content-Type", "application/x-www-form-urlencoded")

	// A batch through the hook: sent, refused by Segment (dead), not sent; then a ping and the re-send.
	rig.segment.RefuseWhen(func(m fakesegment.Message) bool { return m.Properties["event_id"] == "e-refused" })
	now := time.Now().Add(-time.Hour)
	batch := "[" + strings.Join([]string{
		`{"msys":{"message_event":` + spEvent("e-1", "delivery", now, "rcpt_to", `"ada@example.com"`, "rcpt_meta", `{"user_id":"u-1"}`, "subject", `"Tom & Jerry <3"`) + `}}`,
		`{"msys":{"track_event":` + spEvent("e-2", "click", now, "rcpt_to", `"ada@example.com"`, "target_link_url", `"https://example.com/?a=1&b=2"`) + `}}`,
		`{"msys":{"message_event":` + spEvent("e-refused", "bounce", now, "rcpt_to", `"bob@example.com"`) + `}}`,
		`{"msys":{"track_event":` + spEvent("e-3", "initial_open", now, "rcpt_to", `"ada@example.com"`) + `}}`,
		`{"msys":{"relay_event":` + spEvent("e-4", "relay_delivery", now) + `}}`,
	}, ",") + "]"
	hook := "/hooks/sparkpost/" + src.ID
	auth := basicAuth(rotated.Credentials.Username, rotated.Credentials.Password)
	call(t, app, 401, nil, "POST", hook, "", batch)
	call(t, app, 404, nil, "POST", "/hooks/sparkpost/src_aaaaaaaaaaaaaaaa", "", batch, "Authorization", auth)
	call(t, app, 400, nil, "POST", hook, "", `[{"msys":`, "Authorization", auth)
	call(t, app, 200, nil, "POST", hook, "", `[{"msys":{}}]`, "Authorization", auth)
	call(t, app, 200, nil, "POST", hook, "", batch, "Authorization", auth, "X-MessageSystems-Batch-ID", "b-1")
	call(t, app, 200, nil, "POST", hook, "", batch, "Authorization", auth, "X-MessageSystems-Batch-ID", "b-1")
	call(t, app, 200, nil, "POST", "/hooks/sparkpost/"+oauth.ID, issued.AccessToken, `[]`)

	type batchReceipt struct {
		ProcessedAt                 *time.Time `json:"processed_at"`
		Sent, Pending, Paused, Dead int
	}
	var r batchReceipt
	waitFor(t, "batch b-1 to be sent and dead-lettered", func() bool {
		r = batchReceipt{}
		call(t, app, 200, &r, "GET", one+"/batches/b-1", tok, nil)
		return r.ProcessedAt != nil && r.Pending == 0 && r.Sent == 2 && r.Dead == 1
	})
	call(t, app, 404, nil, "GET", one+"/batches/b-unknown", tok, nil)

	// What the store shows of it.
	call(t, app, 200, nil, "GET", base+"/email-events?per_page=2", tok, nil)
	call(t, app, 200, nil, "GET", base+"/email-events?events=click,bounce&timezone=Europe/Berlin", tok, nil)
	call(t, app, 400, nil, "GET", base+"/email-events?campaign=x", tok, nil)
	call(t, app, 200, nil, "GET", base+"/email-events.csv?fields=event_id,type,switchboard.status", tok, nil)
	call(t, app, 400, nil, "GET", base+"/email-events.csv?fields=nope", tok, nil)
	call(t, app, 200, nil, "GET", base+"/retention", tok, nil)
	call(t, app, 200, nil, "PUT", base+"/retention", tok, `{"retention_days": 30}`)
	call(t, app, 400, nil, "PUT", base+"/retention", tok, `{"retention_days": 0}`)

	// Deliveries: the delivered ones carry no last_error, the dead one carries Segment's answer.
	var page struct {
		Results []struct {
			Status    string
			LastError *string `json:"last_error"`
		}
	}
	call(t, app, 200, &page, "GET", base+"/deliveries?target=segment", tok, nil)
	statuses := map[string]int{}
	for _, d := range page.Results {
		statuses[d.Status]++
		switch {
		case d.Status == "delivered" && d.LastError != nil:
			t.Errorf("a delivered delivery has last_error %q", *d.LastError)
		case d.Status == "dead" && (d.LastError == nil || !lastErrorShape.MatchString(*d.LastError)):
			t.Errorf("a dead delivery's last_error is %v, want \"<HTTP status> <answer>\"", d.LastError)
		}
	}
	if statuses["delivered"] != 2 || statuses["dead"] != 1 {
		t.Errorf("segment deliveries by status: %v; want 2 delivered, 1 dead", statuses)
	}
	call(t, app, 200, nil, "GET", base+"/deliveries?status=dead&limit=1", tok, nil)
	call(t, app, 200, nil, "GET", base+"/deliveries?status=failed", tok, nil)
	call(t, app, 400, nil, "GET", base+"/deliveries?status=lost", tok, nil)
	call(t, app, 200, nil, "POST", base+"/deliveries/retry", tok, `{"status": "dead", "target": "segment"}`)
	call(t, app, 200, nil, "POST", base+"/deliveries/retry", tok, `{"status": "failed"}`)
	call(t, app, 400, nil, "POST", base+"/deliveries/retry", tok, `{"status": "delivered"}`)

	// A paused source keeps storing and sends nothing.
	call(t, app, 200, nil, "PATCH", one, tok, `{"paused": true}`)
	call(t, app, 200, nil, "POST", hook, "", `[{"msys":{"message_event":`+spEvent("e-5", "delivery", now, "rcpt_to", `"cy@example.com"`)+`}}]`,
		"Authorization", auth, "X-MessageSystems-Batch-ID", "b-2")
	waitFor(t, "batch b-2 to be processed", func() bool {
		r = batchReceipt{}
		call(t, app, 200, &r, "GET", one+"/batches/b-2", tok, nil)
		return r.ProcessedAt != nil
	})
	call(t, app, 200, nil, "GET", base+"/segment", tok, nil)
	call(t, app, 200, nil, "GET", base+"/deliveries?status=paused", tok, nil)

	// A back-fill from a fake SparkPost Events API.
	key := app.Secret("sp-api-key-openapi-0001")
	sp := newFakeSparkPost(t, key)
	sp.pages[""] = []string{flat("f-1", "delivery", now, "dee@example.com"), flat("e-1", "delivery", now, "ada@example.com")}
	var job struct{ ID, Status string }
	call(t, app, 202, &job, "POST", one+"/backfill", tok, map[string]any{"from": now.Add(-time.Minute).Format(time.RFC3339), "api_key": key, "base_url": sp.URL})
	call(t, app, 400, nil, "POST", one+"/backfill", tok, `{"api_key": "x"}`)
	waitFor(t, "the back-fill to finish", func() bool {
		call(t, app, 200, &job, "GET", one+"/backfill/"+job.ID, tok, nil)
		return job.Status != "running" && job.Status != "processing"
	})
	call(t, app, 404, nil, "GET", one+"/backfill/bf_aaaaaaaaaaaaaaaa", tok, nil)
	call(t, app, 200, nil, "GET", base+"/backfills", tok, nil)

	// Revocation, then deletion.
	call(t, app, 200, nil, "POST", base+"/tokens/revoke", op, nil)
	call(t, app, 401, nil, "GET", base, tok, nil)
	call(t, app, 204, nil, "DELETE", one, op, nil)
	call(t, app, 204, nil, "DELETE", base, op, nil)
	call(t, app, 404, nil, "GET", base, op, nil)

	sc.covered(
		"getHealth 200", "getReadiness 200", "getMetrics 200", "getOpenAPI 200",
		"createTenant 201", "createTenant 400", "createTenant 401", "listTenants 200", "listTenants 403",
		"getTenant 200", "getTenant 401", "getTenant 404", "renameTenant 200", "createTenantToken 201", "createTenantToken 400",
		"revokeTenantTokens 200", "deleteTenant 204",
		"putSegment 200", "putSegment 400", "getSegment 200",
		"createSource 201", "getSource 200", "getSource 404", "listSources 200", "updateSource 200", "updateSource 400",
		"rotateSource 200", "deleteSource 204", "createOAuthToken 200", "createOAuthToken 401",
		"receiveSparkPostBatch 200", "receiveSparkPostBatch 400", "receiveSparkPostBatch 401", "receiveSparkPostBatch 404",
		"getBatchReceipt 200", "getBatchReceipt 404",
		"listEmailEvents 200", "listEmailEvents 400", "exportEmailEvents 200", "exportEmailEvents 400",
		"getRetention 200", "putRetention 200", "putRetention 400",
		"listDeliveries 200", "listDeliveries 400", "retryDeliveries 200", "retryDeliveries 400",
		"startBackfill 202", "startBackfill 400", "getBackfill 200", "getBackfill 404",
	)
}

// workflowHook is a workflow URL on 127.0.0.1 that hands each POST to the spec check and answers
// what answer says (an HTTP status, with Retry-After: 60 on 503 so that retries stay away).
type workflowHook struct {
	*httptest.Server
	mu     sync.Mutex
	posts  int
	answer func(n int) int
}

func newWorkflowHook(t *testing.T, sc *specCheck, answer func(n int) int) *workflowHook {
	h := &workflowHook{answer: answer}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		sc.workflowPOST(req, body)
		h.mu.Lock()
		status := h.answer(h.posts)
		h.posts++
		h.mu.Unlock()
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "60")
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status": %d, "note": "answer of the test receiver & more"}`, status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *workflowHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.posts
}

// TestSegmentResponsesMatchOpenAPI drives direction B end to end, with the workflow engine
// running, and checks every answer (and every workflow POST) against the spec.
func TestSegmentResponsesMatchOpenAPI(t *testing.T) {
	sc := newSpecCheck(t)
	a := newDestApp(t)
	sc.attach(a.TestApp)
	tok := a.Token

	d := a.destination(`{"name": "web", "prefix_events": true, "hold_for": "0s"}`)
	call(t, a.TestApp, 400, nil, "POST", a.path("/destinations"), tok, `{"name": "x", "channel_policy": "merge"}`)
	call(t, a.TestApp, 200, nil, "GET", a.path("/destinations/"+d.ID), tok, nil)
	call(t, a.TestApp, 404, nil, "GET", a.path("/destinations/dst_aaaaaaaaaaaaaaaa"), tok, nil)
	call(t, a.TestApp, 200, nil, "GET", a.path("/destinations"), tok, nil)
	call(t, a.TestApp, 200, nil, "PATCH", a.path("/destinations/"+d.ID), tok, `{"channel_map": {"$slack.email": "slack_email", "$whatsapp": null}}`)
	var rotated createdDestination
	call(t, a.TestApp, 200, &rotated, "POST", a.path("/destinations/"+d.ID+"/rotate"), tok, nil)
	a.Secret(rotated.APIKey)
	a.Secret(rotated.SharedSecret)
	d.APIKey = rotated.APIKey

	// Two workflows: one whose receiver fails once then accepts, one whose receiver is down.
	flaky := newWorkflowHook(t, sc, func(n int) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	down := newWorkflowHook(t, sc, func(int) int { return http.StatusServiceUnavailable })
	var wf struct{ ID string }
	call(t, a.TestApp, 201, &wf, "POST", a.path("/workflows"), tok, map[string]string{"name": "orders", "event": "segment : Order Completed", "url": flaky.URL + "/hook"})
	var wfDown struct{ ID string }
	call(t, a.TestApp, 201, &wfDown, "POST", a.path("/workflows"), tok, map[string]string{"name": "orders (down)", "event": "segment : Order Completed", "url": down.URL + "/hook", "secret": a.Secret("a-secret-of-sixteen-or-more")})
	call(t, a.TestApp, 400, nil, "POST", a.path("/workflows"), tok, `{"name": "x", "event": "y"}`)
	call(t, a.TestApp, 200, nil, "GET", a.path("/workflows"), tok, nil)
	call(t, a.TestApp, 200, nil, "GET", a.path("/workflows/"+wf.ID), tok, nil)
	call(t, a.TestApp, 200, nil, "PATCH", a.path("/workflows/"+wf.ID), tok, `{"name": "orders & refunds"}`)
	call(t, a.TestApp, 404, nil, "GET", a.path("/workflows/wfl_aaaaaaaaaaaaaaaa"), tok, nil)

	// The hook: an identify with a value that is not stored, a track that fires both workflows, a group.
	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	body := `[{"type": "identify", "messageId": "m-1", "userId": "u-1", "timestamp": "` + ts + `",
		"traits": {"email": "ada@example.com", "phone": "+1 415 555 0100", "language": "hindi", "slackEmail": "ada@slack.example"}},
		{"type": "track", "messageId": "m-2", "userId": "u-1", "event": "Order Completed", "properties": {"total": 12.5, "note": "a & b"}, "timestamp": "` + ts + `"},
		{"type": "group", "messageId": "m-3", "userId": "u-1", "groupId": "g-1"},
		{"type": "identify", "messageId": "m-4"}]`
	call(t, a.TestApp, 200, nil, "POST", "/hooks/segment/"+d.ID, d.APIKey, body)
	call(t, a.TestApp, 200, nil, "POST", "/hooks/segment/"+d.ID, d.APIKey, body)
	call(t, a.TestApp, 200, nil, "POST", "/hooks/segment/"+d.ID, d.APIKey, `{"batch": [{"type": "page", "messageId": "m-5", "userId": "u-1", "name": "Home"}]}`)
	call(t, a.TestApp, 401, nil, "POST", "/hooks/segment/"+d.ID, "sbk_wrong", body)
	call(t, a.TestApp, 400, nil, "POST", "/hooks/segment/"+d.ID, d.APIKey, `[{"type": `)
	call(t, a.TestApp, 404, nil, "POST", "/hooks/segment/dst_aaaaaaaaaaaaaaaa", d.APIKey, body)

	waitFor(t, "the flaky workflow to accept its retry and the other to be tried", func() bool {
		return flaky.count() >= 2 && down.count() >= 1
	})
	var page struct {
		Results []struct {
			OriginID  string `json:"origin_id"`
			Status    string
			Attempts  int
			LastError *string `json:"last_error"`
		}
	}
	waitFor(t, "the workflow deliveries to settle", func() bool {
		page.Results = nil // decode afresh: an absent last_error must not keep an earlier poll's
		call(t, a.TestApp, 200, &page, "GET", a.path("/deliveries?target=workflow"), tok, nil)
		settled := 0
		for _, del := range page.Results {
			if del.OriginID == wf.ID && del.Status == "delivered" || del.OriginID == wfDown.ID && del.Status == "pending" && del.Attempts > 0 {
				settled++
			}
		}
		return settled == 2
	})
	for _, del := range page.Results {
		switch {
		case del.Status == "delivered" && del.LastError != nil:
			t.Errorf("a delivered workflow delivery has last_error %q", *del.LastError)
		case del.Status == "pending" && (del.LastError == nil || !strings.HasPrefix(*del.LastError, "503 ")):
			t.Errorf("the failing workflow delivery's last_error is %v, want \"503 <answer>\"", del.LastError)
		}
	}
	call(t, a.TestApp, 200, nil, "GET", a.path("/deliveries?status=failed"), tok, nil)
	call(t, a.TestApp, 200, nil, "POST", a.path("/deliveries/retry"), tok, `{"status": "failed", "target": "workflow"}`)

	// What the hook left behind.
	call(t, a.TestApp, 200, nil, "GET", a.path("/users"), tok, nil)
	call(t, a.TestApp, 200, nil, "GET", a.path("/users?email=ada@example.com"), tok, nil)
	call(t, a.TestApp, 400, nil, "GET", a.path("/users?email=a@example.com&phone=%2B14155550100"), tok, nil)
	call(t, a.TestApp, 200, nil, "GET", a.path("/users/u-1"), tok, nil)
	call(t, a.TestApp, 404, nil, "GET", a.path("/users/nobody"), tok, nil)
	call(t, a.TestApp, 200, nil, "GET", a.path("/users/u-1/events"), tok, nil)
	call(t, a.TestApp, 200, nil, "GET", a.path("/destinations/"+d.ID+"/messages"), tok, nil)
	call(t, a.TestApp, 200, nil, "GET", a.path("/destinations/"+d.ID+"/messages?status=ignored"), tok, nil)
	call(t, a.TestApp, 200, nil, "PATCH", a.path("/destinations/"+d.ID), tok, `{"channel_map": {"$whatsapp": "phone"}}`)
	call(t, a.TestApp, 200, nil, "POST", a.path("/destinations/"+d.ID+"/replay"), tok, `{"dry_run": true}`)
	call(t, a.TestApp, 200, nil, "POST", a.path("/destinations/"+d.ID+"/replay"), tok, nil)
	call(t, a.TestApp, 400, nil, "POST", a.path("/destinations/"+d.ID+"/replay"), tok, `{"types": ["teleport"]}`)

	call(t, a.TestApp, 204, nil, "DELETE", a.path("/workflows/"+wfDown.ID), tok, nil)
	call(t, a.TestApp, 204, nil, "DELETE", a.path("/destinations/"+d.ID), tok, nil)
	call(t, a.TestApp, 404, nil, "POST", "/hooks/segment/"+d.ID, d.APIKey, body)

	sc.covered(
		"createDestination 201", "createDestination 400", "getDestination 200", "getDestination 404", "listDestinations 200",
		"updateDestination 200", "rotateDestination 200", "deleteDestination 204",
		"replayDestination 200", "replayDestination 400", "listDestinationMessages 200",
		"receiveSegmentMessages 200", "receiveSegmentMessages 400", "receiveSegmentMessages 401", "receiveSegmentMessages 404",
		"listUsers 200", "listUsers 400", "getUser 200", "getUser 404", "listUserEvents 200",
		"createWorkflow 201", "createWorkflow 400", "listWorkflows 200", "getWorkflow 200", "getWorkflow 404",
		"updateWorkflow 200", "deleteWorkflow 204",
		"listDeliveries 200", "retryDeliveries 200",
	)
}

// answerHeader is what the server sends with a JSON answer.
func answerHeader() http.Header {
	return http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Request-Id": {"req-1"}}
}

// TestSpecCheckCatchesMismatches shows the check above can fail: answers that break the spec in
// the ways a drifting handler would are each reported, with the path and operation.
func TestSpecCheckCatchesMismatches(t *testing.T) {
	for _, tc := range []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"field of the wrong type", "GET", "/api/v1/tenants/ten_1", 200, `{"id": "ten_1", "name": 7, "created_at": "2024-05-01T00:00:00Z", "updated_at": "2024-05-01T00:00:00Z"}`},
		{"required field missing", "GET", "/api/v1/tenants/ten_1", 200, `{"id": "ten_1", "name": "A", "created_at": "2024-05-01T00:00:00Z"}`},
		{"undocumented field", "GET", "/api/v1/tenants/ten_1/segment", 200, `{"write_key_hint": "…abcd", "endpoint": "https://api.segment.io", "max_requests_per_second": 50,
			"updated_at": "2024-05-01T00:00:00Z", "status": "active", "status_since": null, "status_reason": null, "oldest_undelivered_at": null,
			"oldest_undelivered_age_seconds": 0, "seconds_until_dead": null, "write_key": "wk_leaked"}`},
		{"null where the spec has none", "GET", "/api/v1/tenants/ten_1/users/u-1", 200, `{"distinct_id": "u-1", "properties": {}, "$email": null, "$sms": [],
			"$whatsapp": [], "$slack": [], "$androidpush": [], "$iospush": [], "created_at": "2024-05-01T00:00:00Z", "updated_at": "2024-05-01T00:00:00Z"}`},
		{"not a date-time", "GET", "/api/v1/tenants/ten_1", 200, `{"id": "ten_1", "name": "A", "created_at": "yesterday", "updated_at": "2024-05-01T00:00:00Z"}`},
		{"status the operation does not list", "DELETE", "/api/v1/tenants/ten_1/workflows/wfl_1", 409, `{"error": {"code": "conflict", "message": "x"}}`},
		{"error without its shape", "GET", "/api/v1/tenants/ten_1", 404, `{"message": "not found"}`},
		{"path the spec lacks", "GET", "/api/v1/teleport", 200, `{}`},
		{"no X-Request-Id", "GET", "/healthz", 200, `{"status": "ok"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reports []string
			sc := newSpecCheck(t)
			sc.errorf = func(format string, args ...any) { reports = append(reports, fmt.Sprintf(format, args...)) }
			req := httptest.NewRequest(tc.method, "http://switchboard.test"+tc.path, nil)
			header := answerHeader()
			if tc.name == "no X-Request-Id" {
				header.Del("X-Request-Id")
			}
			sc.exchange(req, tc.status, header, []byte(tc.body))
			if len(reports) == 0 {
				t.Fatal("the mismatching answer passed the check")
			}
			if !strings.Contains(reports[0], tc.method+" "+tc.path) {
				t.Errorf("the report does not name the request: %s", reports[0])
			}
			t.Logf("reported: %.300s", reports[0])
		})
	}
}

// TestSpecCheckPassesDocumentedAnswers is the control for the test above: answers of the
// documented shapes pass, so a failure there is the mismatch and not the check itself.
func TestSpecCheckPassesDocumentedAnswers(t *testing.T) {
	sc := newSpecCheck(t)
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/api/v1/tenants/ten_1", 200, `{"id": "ten_1", "name": "A", "created_at": "2024-05-01T00:00:00Z", "updated_at": "2024-05-01T00:00:00.5Z"}`},
		{"GET", "/api/v1/tenants/ten_1", 404, `{"error": {"code": "not_found", "message": "tenant not found"}}`},
		{"GET", "/api/v1/tenants/ten_1/users/u-1", 200, `{"distinct_id": "u-1", "properties": {}, "$email": ["a@example.com"], "$sms": [],
			"$whatsapp": [], "$slack": [{"email": "a@slack.example"}], "$androidpush": [], "$iospush": [{"token": "t", "provider": "apns"}],
			"$timezone": "Europe/Berlin", "created_at": "2024-05-01T00:00:00Z", "updated_at": "2024-05-01T00:00:00Z"}`},
		{"DELETE", "/api/v1/tenants/ten_1/workflows/wfl_1", 204, ``},
		{"GET", "/healthz", 200, `{"status": "ok"}`},
	} {
		header := answerHeader()
		if tc.body == "" {
			header.Del("Content-Type")
		}
		sc.exchange(httptest.NewRequest(tc.method, "http://switchboard.test"+tc.path, nil), tc.status, header, []byte(tc.body))
	}
}

// TestSpecCheckCatchesWorkflowPOSTMismatches shows the same for the body POSTed to workflows.
func TestSpecCheckCatchesWorkflowPOSTMismatches(t *testing.T) {
	var reports []string
	sc := newSpecCheck(t)
	sc.errorf = func(format string, args ...any) { reports = append(reports, fmt.Sprintf(format, args...)) }
	post := func(body string) {
		req := httptest.NewRequest("POST", "http://hooks.example.com/orders", nil)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Switchboard-Signature", "sha256="+strings.Repeat("ab", 32))
		req.Header.Set("Idempotency-Key", "m-1")
		sc.workflowPOST(req, []byte(body))
	}
	recipient := `{"distinct_id": "u-1", "$email": [], "$sms": [], "$whatsapp": [], "$slack": [], "$androidpush": [], "$iospush": [], "properties": {}}`
	event := `{"name": "Order Completed", "properties": {}, "timestamp": "2024-05-01T00:00:00Z", "message_id": "m-1"}`
	post(`{"workflow": "orders", "workflow_id": "wfl_1", "event": ` + event + `, "recipient": ` + recipient + `}`)
	if len(reports) != 0 {
		t.Fatalf("a body of the documented shape was refused: %v", reports)
	}
	post(`{"distinct_id": "u-1", "event": ` + event + `}`) // the stored payload, not what is POSTed
	if len(reports) != 1 {
		t.Fatalf("the stored payload passed as a workflow POST body (%d reports)", len(reports))
	}
	t.Logf("reported: %.300s", reports[0])
}
