package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/fakesegment"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
)

// fakeSparkPost serves GET /api/v1/events/message from pages of flat Events-API results,
// linked by cursor, after answering each listed status first (429 twice, 502, …).
type fakeSparkPost struct {
	*httptest.Server
	key   string
	pages map[string][]string      // cursor ("" for the first page) → results
	next  map[string]string        // cursor → the next page's cursor
	fail  map[string][]int         // cursor → statuses to answer before the page
	gate  map[string]chan struct{} // cursor → the page waits for this to close (a slow SparkPost)

	mu       sync.Mutex
	requests []string // cursors asked for, failures included
	queries  []string
	badAuth  int
	hold     chan struct{} // when set, every request waits for it to close (or for the caller to give up)
}

func newFakeSparkPost(t *testing.T, key string) *fakeSparkPost {
	f := &fakeSparkPost{key: key, pages: map[string][]string{}, next: map[string]string{}, fail: map[string][]int{},
		gate: map[string]chan struct{}{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSparkPost) handle(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path != "/api/v1/events/message" || r.Method != "GET" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != f.key {
		f.badAuth++
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"errors":[{"message":"Unauthorized."}]}`))
		return
	}
	cur := r.URL.Query().Get("cursor")
	f.requests = append(f.requests, cur)
	f.queries = append(f.queries, r.URL.RawQuery)
	if statuses := f.fail[cur]; len(statuses) > 0 {
		f.fail[cur] = statuses[1:]
		if statuses[0] == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(statuses[0])
		return
	}
	if gate := f.gate[cur]; gate != nil {
		f.mu.Unlock()
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		f.mu.Lock()
	}
	results, ok := f.pages[cur]
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"errors":[{"message":"invalid cursor"}]}`))
		return
	}
	total := 0
	for _, p := range f.pages {
		total += len(p)
	}
	links := `{}`
	if n := f.next[cur]; n != "" {
		q := r.URL.Query()
		q.Set("cursor", n)
		links = fmt.Sprintf(`{"next": "/api/v1/events/message?%s"}`, q.Encode())
	}
	fmt.Fprintf(w, `{"results": [%s], "total_count": %d, "links": %s}`, strings.Join(results, ","), total, links)
}

// flat is an Events API result: flat, with an ISO-8601 timestamp (whole seconds, as SparkPost's).
func flat(id, typ string, at time.Time, rcpt string) string {
	return fmt.Sprintf(`{"type":%q,"event_id":%q,"timestamp":%q,"rcpt_to":%q,"message_id":"m-%s","campaign_id":"spring","subject":"<b>Hi</b> & welcome","rcpt_meta":{"user_id":"u-%s"}}`,
		typ, id, at.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05.000Z"), rcpt, id, id)
}

// backfillRig is a server with everything a back-fill needs running: the inbox processor, the
// Segment engine (to a fake Segment) and the back-fill runner.
type backfillRig struct {
	app      *TestApp
	segment  *fakesegment.Server
	runner   *sparkpost.BackfillRunner
	proc     *source.Processor
	writeKey string
	// slowFrom, when set, makes the retry attempts from this one on wait an hour (as a job waits
	// out SparkPost's Retry-After): a job then sits between two attempts until it is stopped.
	slowFrom atomic.Int32
}

func newBackfillRig(t *testing.T) *backfillRig {
	app := NewTestApp(t)
	rig := &backfillRig{app: app, segment: fakesegment.New(), writeKey: app.Secret("wk_backfill_0001")}
	t.Cleanup(rig.segment.Close)
	rig.proc, rig.runner = app.App.Processor, app.App.Backfill
	rig.proc.Poll = 20 * time.Millisecond
	rig.runner.Poll = 20 * time.Millisecond
	rig.runner.Backoff = func(attempt int, _ time.Duration) time.Duration {
		if n := rig.slowFrom.Load(); n > 0 && attempt >= int(n) {
			return time.Hour
		}
		return 5 * time.Millisecond
	}
	app.Start()
	return rig
}

// tenant makes a tenant with a write key for the fake Segment and a source.
func (r *backfillRig) tenant(name string) (tid, token string, src createdSource) {
	t := r.app.Tenant(name)
	token = r.app.TenantToken(t)
	if status, body, _ := r.app.Do("PUT", "/api/v1/tenants/"+t.ID+"/segment", token, map[string]any{"write_key": r.writeKey, "endpoint": r.segment.URL}); status != 200 {
		r.app.t.Fatalf("segment: %d %s", status, body)
	}
	return t.ID, token, r.app.createSource(token, t.ID, `{"name": "prod"}`)
}

type jobOut struct {
	ID          string
	SourceID    string `json:"source_id"`
	Status      string
	Pages       int
	Fetched     int
	TotalCount  int `json:"total_count"`
	Stored      int
	Duplicates  *int
	Forwarded   int
	Delivered   int
	Unprocessed int `json:"unprocessed_batches"`
	Retries     int
	Error       string
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at"`
	CreatedAt   time.Time  `json:"created_at"`
}

// await polls the job until it is no longer running or processing.
func (r *backfillRig) await(token, location string) jobOut {
	r.app.t.Helper()
	return r.waitFor(token, location, "the job to end", func(j jobOut) bool { return j.Status != "running" && j.Status != "processing" })
}

// waitFor polls the job until ok holds, for at most a minute.
func (r *backfillRig) waitFor(token, location, what string, ok func(jobOut) bool) jobOut {
	r.app.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		status, body, _ := r.app.Do("GET", location, token, nil)
		var j jobOut
		if status != 200 || json.Unmarshal(body, &j) != nil {
			r.app.t.Fatalf("job: %d %s", status, body)
		}
		if ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			r.app.t.Fatalf("waited a minute for %s; the job shows %s", what, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *backfillRig) start(token, tid, sid string, body map[string]any) (int, []byte, string) {
	status, b, hdr := r.app.Do("POST", "/api/v1/tenants/"+tid+"/sources/"+sid+"/backfill", token, body)
	return status, b, hdr.Get("Location")
}

func TestBackfillStoresOnceAndForwardsOnce(t *testing.T) {
	rig := newBackfillRig(t)
	app := rig.app
	tid, token, src := rig.tenant("A")
	key := app.Secret("sp-api-key-0123456789abcdef")
	now := time.Now().UTC()
	at := func(h int) time.Time { return now.Add(-48 * time.Hour).Add(time.Duration(h) * time.Minute) }

	// A webhook already brought event "w1" and Segment has it.
	hook := &sparkpostFeed{app: app, hook: "/hooks/sparkpost/" + src.ID, auth: basicAuth(src.Credentials.Username, src.Credentials.Password), proc: rig.proc}
	hook.post(`{"msys":{"message_event":` + spEvent("w1", "delivery", at(1), "rcpt_to", `"ada@example.com"`, "rcpt_meta", `{"user_id":"u-w1"}`) + `}}`)
	if !rig.segment.WaitUnique(rig.writeKey, 1, 10*time.Second) {
		t.Fatal("the webhook's event did not reach Segment")
	}

	sp := newFakeSparkPost(t, key)
	sp.pages[""] = []string{flat("b1", "delivery", at(5), "bob@example.com"), flat("w1", "delivery", at(1), "ada@example.com"),
		flat("b2", "open", at(6), "bob@example.com")}
	sp.pages["c2"] = []string{flat("b3", "click", at(7), "cy@example.com"), flat("b4", "initial_open", at(8), "cy@example.com"),
		flat("b5", "sms_status", at(9), "")}
	sp.pages["c3"] = []string{flat("b6", "bounce", at(10), "dee@example.com"), flat("b2", "open", at(6), "bob@example.com")}
	sp.next[""], sp.next["c2"] = "c2", "c3"
	sp.fail[""] = []int{429, 429}
	sp.fail["c2"] = []int{502}

	status, body, location := rig.start(token, tid, src.ID, map[string]any{"from": at(0).Format(time.RFC3339), "api_key": key,
		"base_url": sp.URL, "forward": true})
	if status != 202 || !strings.HasPrefix(location, "/api/v1/tenants/"+tid+"/sources/"+src.ID+"/backfill/bf_") || strings.Contains(string(body), key) {
		t.Fatalf("start: %d %s (Location %q)", status, body, location)
	}
	j := rig.await(token, location)
	// b1..b6 are new (b2 came twice); w1 was there already. Forwarded: delivery, open, click,
	// bounce (b1, b2, b3, b6); initial_open and sms_status are stored, not sent.
	if j.Status != "done" || j.Pages != 3 || j.Fetched != 8 || j.TotalCount != 8 || j.Stored != 6 || j.Duplicates == nil ||
		*j.Duplicates != 2 || j.Forwarded != 4 || j.Retries != 3 || j.Unprocessed != 0 || j.Error != "" {
		t.Fatalf("job: %+v (duplicates %v)", j, j.Duplicates)
	}
	// The last of the retried failures stays visible, with its time, after the job recovered.
	if j.LastError != "SparkPost answered 502" || j.LastErrorAt == nil || j.LastErrorAt.After(time.Now()) {
		t.Fatalf("last error of a job that recovered: %q at %v", j.LastError, j.LastErrorAt)
	}
	if !rig.segment.WaitUnique(rig.writeKey, 5, 10*time.Second) {
		t.Fatalf("Segment got %d distinct messages; want 5", len(rig.segment.Unique(rig.writeKey)))
	}
	time.Sleep(100 * time.Millisecond) // anything sent twice would arrive now
	if n := len(rig.segment.Messages(rig.writeKey)); n != 5 {
		t.Fatalf("Segment received %d messages for 5 events; each must be sent once", n)
	}
	seen := map[string]bool{}
	for _, m := range rig.segment.Messages(rig.writeKey) {
		id := fmt.Sprint(m.Properties["event_id"])
		seen[id] = true
		if id != "w1" && m.Properties["subject"] != "<b>Hi</b> & welcome" {
			t.Errorf("subject reached Segment as %q", m.Properties["subject"])
		}
	}
	for _, id := range []string{"w1", "b1", "b2", "b3", "b6"} {
		if !seen[id] {
			t.Errorf("%s did not reach Segment", id)
		}
	}

	// SparkPost saw 429, 429, page 1, 502, page 2, page 3, with the window and page size asked.
	sp.mu.Lock()
	if got := strings.Join(sp.requests, ","); got != ",,,c2,c2,c3" {
		t.Errorf("requests by cursor: %q", got)
	}
	if q := sp.queries[0]; !strings.Contains(q, "per_page=10000") || !strings.Contains(q, "from="+url.QueryEscape(at(0).Format("2006-01-02T15:04"))) {
		t.Errorf("first query: %s", q)
	}
	sp.mu.Unlock()

	// Stored once each, in the webhook's shape: the Events API's click is a track event.
	p := app.events(token, "/api/v1/tenants/"+tid+"/email-events?per_page=100")
	if p.TotalCount != 7 {
		t.Fatalf("email-events: %d events: %v", p.TotalCount, p.ids())
	}
	for _, r := range p.Results {
		if r.EventID == "b3" && (r.Class != "track" || r.Timestamp != at(7).Truncate(time.Second).Format("2006-01-02T15:04:05.000Z")) {
			t.Errorf("b3 as stored: %+v", r)
		}
	}

	// The same window again: everything is a duplicate, nothing is sent.
	status, _, location = rig.start(token, tid, src.ID, map[string]any{"from": at(0).Format(time.RFC3339), "api_key": key, "base_url": sp.URL, "forward": true})
	if status != 202 {
		t.Fatalf("second start: %d", status)
	}
	if j := rig.await(token, location); j.Status != "done" || j.Stored != 0 || j.Forwarded != 0 || *j.Duplicates != 8 {
		t.Fatalf("second job: %+v", j)
	}
	if n := len(rig.segment.Messages(rig.writeKey)); n != 5 {
		t.Fatalf("Segment received %d messages after a repeated back-fill", n)
	}
	if strings.Contains(app.Logs.String(), key) {
		t.Fatal("the SparkPost API key reached the log")
	}
}

func TestBackfillWithoutForwardStoresOnly(t *testing.T) {
	rig := newBackfillRig(t)
	tid, token, src := rig.tenant("A")
	key := rig.app.Secret("sp-api-key-store-only")
	at := time.Now().Add(-time.Hour)
	sp := newFakeSparkPost(t, key)
	sp.pages[""] = []string{flat("s1", "delivery", at, "a@example.com"), flat("s2", "click", at.Add(time.Second), "a@example.com"), `"not an object"`}
	status, body, location := rig.start(token, tid, src.ID, map[string]any{"from": at.Add(-time.Minute).Format(time.RFC3339), "api_key": key, "base_url": sp.URL})
	if status != 202 {
		t.Fatalf("start: %d %s", status, body)
	}
	if j := rig.await(token, location); j.Status != "done" || j.Stored != 3 || j.Forwarded != 0 {
		t.Fatalf("job: %+v", j)
	}
	p := rig.app.events(token, "/api/v1/tenants/"+tid+"/email-events")
	statuses := map[string]string{}
	for _, r := range p.Results {
		statuses[r.Type] = r.Switchboard.Status
	}
	if p.TotalCount != 3 || statuses["delivery"] != "not_sent" || statuses["click"] != "not_sent" || statuses[""] != "invalid" {
		t.Fatalf("stored: %d %v", p.TotalCount, statuses)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(rig.segment.Messages(rig.writeKey)); n != 0 {
		t.Fatalf("Segment received %d messages from a back-fill without forward", n)
	}
}

func TestBackfillRequests(t *testing.T) {
	rig := newBackfillRig(t)
	tid, token, src := rig.tenant("A")
	otherTID, otherToken, _ := rig.tenant("B")
	key := rig.app.Secret("sp-api-key-requests")
	sp := newFakeSparkPost(t, key)
	sp.pages[""] = []string{}
	base := "/api/v1/tenants/" + tid + "/sources/" + src.ID + "/backfill"
	recent := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	old := time.Now().Add(-11 * 24 * time.Hour).UTC().Format(time.RFC3339)
	for _, sc := range []Scenario{
		{Name: "window older than 10 days", Method: "POST", URL: base, Token: token, Body: map[string]any{"from": old, "api_key": key, "base_url": sp.URL}, ExpectedStatus: 400, ExpectedContent: []string{"from:", "10 days"}, NotExpected: []string{key}},
		{Name: "no from", Method: "POST", URL: base, Token: token, Body: map[string]any{"api_key": key}, ExpectedStatus: 400, ExpectedContent: []string{"from: is required"}},
		{Name: "bad from", Method: "POST", URL: base, Token: token, Body: map[string]any{"from": "last week", "api_key": key}, ExpectedStatus: 400, ExpectedContent: []string{"from:"}},
		{Name: "to before from", Method: "POST", URL: base, Token: token, Body: map[string]any{"from": recent, "to": old, "api_key": key}, ExpectedStatus: 400, ExpectedContent: []string{"to:"}},
		{Name: "no key", Method: "POST", URL: base, Token: token, Body: map[string]any{"from": recent}, ExpectedStatus: 400, ExpectedContent: []string{"api_key: is required"}},
		{Name: "key with a space", Method: "POST", URL: base, Token: token, Body: map[string]any{"from": recent, "api_key": "a b"}, ExpectedStatus: 400, ExpectedContent: []string{"api_key:"}},
		{Name: "plain http elsewhere", Method: "POST", URL: base, Token: token, Body: map[string]any{"from": recent, "api_key": key, "base_url": "http://api.sparkpost.com"}, ExpectedStatus: 400, ExpectedContent: []string{"base_url:"}},
		{Name: "not a URL", Method: "POST", URL: base, Token: token, Body: map[string]any{"from": recent, "api_key": key, "base_url": "sparkpost"}, ExpectedStatus: 400, ExpectedContent: []string{"base_url:"}},
		{Name: "unknown field", Method: "POST", URL: base, Token: token, Body: map[string]any{"from": recent, "api_key": key, "apikey": key}, ExpectedStatus: 400, NotExpected: []string{key}},
		{Name: "unknown source", Method: "POST", URL: "/api/v1/tenants/" + tid + "/sources/src_aaaaaaaaaaaaaaaa/backfill", Token: token, Body: map[string]any{"from": recent, "api_key": key, "base_url": sp.URL}, ExpectedStatus: 404},
		{Name: "other tenant's source", Method: "POST", URL: "/api/v1/tenants/" + otherTID + "/sources/" + src.ID + "/backfill", Token: otherToken, Body: map[string]any{"from": recent, "api_key": key, "base_url": sp.URL}, ExpectedStatus: 404},
		{Name: "other tenant's path", Method: "POST", URL: base, Token: otherToken, Body: map[string]any{"from": recent, "api_key": key, "base_url": sp.URL}, ExpectedStatus: 404},
		{Name: "unknown job", Method: "GET", URL: base + "/bf_aaaaaaaaaaaaaaaa", Token: token, ExpectedStatus: 404},
	} {
		sc.Run(t, rig.app)
	}

	// One job per tenant at a time.
	sp.mu.Lock()
	sp.hold = make(chan struct{})
	sp.mu.Unlock()
	status, body, location := rig.start(token, tid, src.ID, map[string]any{"from": recent, "api_key": key, "base_url": sp.URL})
	if status != 202 {
		t.Fatalf("start: %d %s", status, body)
	}
	if status, body, _ := rig.start(token, tid, src.ID, map[string]any{"from": recent, "api_key": key, "base_url": sp.URL}); status != 409 {
		t.Fatalf("second job while one runs: %d %s", status, body)
	}
	sp.mu.Lock()
	close(sp.hold)
	sp.hold = nil
	sp.mu.Unlock()
	if j := rig.await(token, location); j.Status != "done" || j.Pages != 1 || j.Fetched != 0 {
		t.Fatalf("empty window: %+v", j)
	}

	// A key SparkPost refuses: the job fails and says why.
	_, _, location = rig.start(token, tid, src.ID, map[string]any{"from": recent, "api_key": "wrong-key", "base_url": sp.URL})
	if j := rig.await(token, location); j.Status != "failed" || !strings.Contains(j.Error, "401") || !strings.Contains(j.Error, "Events Search") {
		t.Fatalf("refused key: %+v", j)
	}
	// SparkPost down for good: the job gives up after its attempts.
	sp.mu.Lock()
	sp.fail[""] = []int{503, 503, 503, 503, 503, 503, 503, 503, 503, 503, 503}
	sp.mu.Unlock()
	_, _, location = rig.start(token, tid, src.ID, map[string]any{"from": recent, "api_key": key, "base_url": sp.URL})
	if j := rig.await(token, location); j.Status != "failed" || !strings.Contains(j.Error, "gave up after 10 attempts") ||
		j.LastError != "SparkPost answered 503" || j.Retries != 9 {
		t.Fatalf("SparkPost down: %+v", j)
	}

	// Stopping the runner interrupts a running job: SparkPost holds the page until the job gives up.
	hold := make(chan struct{})
	defer close(hold)
	sp.mu.Lock()
	sp.hold = hold
	sp.mu.Unlock()
	_, _, location = rig.start(token, tid, src.ID, map[string]any{"from": recent, "api_key": key, "base_url": sp.URL})
	if err := rig.runner.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if j := rig.await(token, location); j.Status != "interrupted" {
		t.Fatalf("after Close: %+v", j)
	}
	if status, body, _ := rig.start(token, tid, src.ID, map[string]any{"from": recent, "api_key": key, "base_url": sp.URL}); status != 503 {
		t.Fatalf("with no runner: %d %s", status, body)
	}
}

// A running job shows its progress as it goes: each page as it is stored while SparkPost is slow
// with the next, and each retry with its error while it waits to try a page again.
func TestBackfillProgressWhileRunning(t *testing.T) {
	rig := newBackfillRig(t)
	tid, token, src := rig.tenant("A")
	key := rig.app.Secret("sp-api-key-progress")
	at := time.Now().Add(-time.Hour)
	sp := newFakeSparkPost(t, key)
	sp.pages[""] = []string{flat("p1", "delivery", at, "a@example.com"), flat("p2", "open", at, "a@example.com")}
	sp.pages["c2"] = []string{flat("p3", "click", at, "a@example.com")}
	sp.pages["c3"] = []string{flat("p4", "bounce", at, "b@example.com")}
	sp.next[""], sp.next["c2"] = "c2", "c3"
	slow := make(chan struct{})
	sp.gate["c2"] = slow
	sp.fail["c3"] = []int{503, 429, 503, 503, 503, 503, 503, 503, 503, 503}
	var released bool
	defer func() {
		if !released {
			close(slow)
		}
	}()
	// From the third retry on, the job waits an hour before trying again.
	rig.slowFrom.Store(3)

	status, body, location := rig.start(token, tid, src.ID, map[string]any{"from": at.Add(-time.Minute).Format(time.RFC3339), "api_key": key, "base_url": sp.URL})
	if status != 202 {
		t.Fatalf("start: %d %s", status, body)
	}
	list := "/api/v1/tenants/" + tid + "/backfills"

	// The first page is stored; SparkPost is slow with the second.
	j := rig.waitFor(token, location, "the first page", func(j jobOut) bool { return j.Pages >= 1 })
	if j.Status != "running" || j.Pages != 1 || j.Fetched != 2 || j.TotalCount != 4 || j.Retries != 0 || j.LastError != "" || j.LastErrorAt != nil {
		t.Fatalf("while the second page is slow: %+v", j)
	}
	if got := listJobs(t, rig.app, token, list); len(got) != 1 || got[0].ID != j.ID || got[0].Pages != 1 || got[0].Fetched != 2 || got[0].Status != "running" {
		t.Fatalf("list while the second page is slow: %+v", got)
	}

	// The second page comes; the third fails three times, and the job waits to try it again.
	close(slow)
	released = true
	j = rig.waitFor(token, location, "three retries", func(j jobOut) bool { return j.Retries >= 3 })
	if j.Status != "running" || j.Pages != 2 || j.Fetched != 3 || j.Retries != 3 || j.LastError != "SparkPost answered 503" ||
		j.LastErrorAt == nil || j.Error != "" || j.Duplicates != nil {
		t.Fatalf("while retrying the third page: %+v", j)
	}
	if got := listJobs(t, rig.app, token, list); len(got) != 1 || got[0].Retries != 3 || got[0].LastError != "SparkPost answered 503" {
		t.Fatalf("list while retrying: %+v", got)
	}
	sp.mu.Lock()
	if got := strings.Join(sp.requests, ","); got != ",c2,c3,c3,c3" {
		t.Errorf("requests by cursor: %q", got)
	}
	sp.mu.Unlock()

	// Stopped while it waits: the progress it made stays on the record.
	if err := rig.runner.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	j = rig.await(token, location)
	if j.Status != "interrupted" || j.Pages != 2 || j.Fetched != 3 || j.Retries != 3 || j.LastError != "SparkPost answered 503" ||
		!strings.Contains(j.Error, "stopped") {
		t.Fatalf("after Close: %+v", j)
	}
}

// listJobs reads one page of a tenant's back-fill jobs.
func listJobs(t *testing.T, app *TestApp, token, path string) []jobOut {
	t.Helper()
	status, body, _ := app.Do("GET", path, token, nil)
	var page struct{ Results []jobOut }
	if status != 200 || json.Unmarshal(body, &page) != nil {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	return page.Results
}

func TestBackfillList(t *testing.T) {
	rig := newBackfillRig(t)
	app := rig.app
	tid, token, srcA := rig.tenant("A")
	srcB := app.createSource(token, tid, `{"name": "second"}`)
	otherTID, otherToken, otherSrc := rig.tenant("B")
	key := app.Secret("sp-api-key-list")
	sp := newFakeSparkPost(t, key)
	sp.pages[""] = []string{}
	recent := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)

	// Five jobs, one after the other (a tenant runs one at a time): the fourth of source B.
	var jobs []jobOut
	for i := range 5 {
		sid := srcA.ID
		if i == 3 {
			sid = srcB.ID
		}
		status, body, location := rig.start(token, tid, sid, map[string]any{"from": recent, "api_key": key, "base_url": sp.URL})
		if status != 202 {
			t.Fatalf("start %d: %d %s", i, status, body)
		}
		j := rig.await(token, location)
		if j.Status != "done" {
			t.Fatalf("job %d: %+v", i, j)
		}
		jobs = append(jobs, j)
	}
	if _, _, location := rig.start(otherToken, otherTID, otherSrc.ID, map[string]any{"from": recent, "api_key": key, "base_url": sp.URL}); rig.await(otherToken, location).Status != "done" {
		t.Fatal("other tenant's job did not finish")
	}
	// Newest first; jobs started in the same millisecond by id, descending.
	want := slices.Clone(jobs)
	slices.SortFunc(want, func(a, b jobOut) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})

	type listPage struct {
		Results    []jobOut
		TotalCount int `json:"total_count"`
		Links      struct{ Next string }
	}
	walk := func(path string) (got []jobOut, pages int) {
		for path != "" {
			status, body, _ := app.Do("GET", path, token, nil)
			var p listPage
			if status != 200 || json.Unmarshal(body, &p) != nil || p.Results == nil {
				t.Fatalf("GET %s: %d %s", path, status, body)
			}
			if strings.Contains(string(body), key) || strings.Contains(string(body), "api_key") {
				t.Fatalf("the list shows the API key: %s", body)
			}
			if p.TotalCount != len(jobs) && !strings.Contains(path, "source_id") {
				t.Fatalf("total_count %d, want %d: %s", p.TotalCount, len(jobs), body)
			}
			got = append(got, p.Results...)
			path, pages = p.Links.Next, pages+1
			if pages > 10 {
				t.Fatal("links.next never ends")
			}
		}
		return got, pages
	}
	ids := func(js []jobOut) string {
		var s []string
		for _, j := range js {
			s = append(s, j.ID)
		}
		return strings.Join(s, ",")
	}

	base := "/api/v1/tenants/" + tid + "/backfills"
	got, pages := walk(base + "?limit=2")
	if ids(got) != ids(want) || pages != 3 {
		t.Fatalf("paged by 2: %d pages, %s; want 3 pages, %s", pages, ids(got), ids(want))
	}
	for _, j := range got {
		if j.Status != "done" || j.Pages != 1 || j.SourceID == "" || j.Duplicates == nil {
			t.Fatalf("listed job: %+v", j)
		}
	}
	if got, pages := walk(base); ids(got) != ids(want) || pages != 1 {
		t.Fatalf("default page: %d pages, %s", pages, ids(got))
	}
	// One source's jobs; the filter is kept across pages.
	var wantA []jobOut
	for _, j := range want {
		if j.SourceID == srcA.ID {
			wantA = append(wantA, j)
		}
	}
	if got, pages := walk(base + "?limit=3&source_id=" + srcA.ID); ids(got) != ids(wantA) || pages != 2 {
		t.Fatalf("source A by 3: %d pages, %s; want %s", pages, ids(got), ids(wantA))
	}
	if got := listJobs(t, app, token, base+"?source_id="+srcB.ID); len(got) != 1 || got[0].ID != jobs[3].ID {
		t.Fatalf("source B: %+v", got)
	}

	for _, sc := range []Scenario{
		{Name: "limit 0", Method: "GET", URL: base + "?limit=0", Token: token, ExpectedStatus: 400, ExpectedContent: []string{"limit:"}},
		{Name: "limit over 1000", Method: "GET", URL: base + "?limit=1001", Token: token, ExpectedStatus: 400, ExpectedContent: []string{"limit:"}},
		{Name: "limit not a number", Method: "GET", URL: base + "?limit=ten", Token: token, ExpectedStatus: 400, ExpectedContent: []string{"limit:"}},
		{Name: "limit 1000", Method: "GET", URL: base + "?limit=1000", Token: token, ExpectedStatus: 200, ExpectedContent: []string{`"total_count":5`}},
		{Name: "forged cursor", Method: "GET", URL: base + "?cursor=not-a-cursor", Token: token, ExpectedStatus: 400, ExpectedContent: []string{"cursor:"}},
		{Name: "other tenant's path", Method: "GET", URL: base, Token: otherToken, ExpectedStatus: 404},
		{Name: "no token", Method: "GET", URL: base, ExpectedStatus: 401},
		{Name: "other tenant sees its own", Method: "GET", URL: "/api/v1/tenants/" + otherTID + "/backfills", Token: otherToken, ExpectedStatus: 200,
			ExpectedContent: []string{`"total_count":1`}, NotExpected: []string{srcA.ID, jobs[0].ID}},
		{Name: "unknown source", Method: "GET", URL: base + "?source_id=src_aaaaaaaaaaaaaaaa", Token: token, ExpectedStatus: 200,
			ExpectedContent: []string{`"results":[]`, `"total_count":0`}},
		{Name: "operator", Method: "GET", URL: base + "?limit=1", Token: app.OperatorToken(), ExpectedStatus: 200, ExpectedContent: []string{want[0].ID, `"next":`}},
	} {
		sc.Run(t, app)
	}
}
