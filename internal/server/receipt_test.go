package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/source"
)

// receipt is a batch receipt as a client reads it; ProcessedAt is nil when the field is absent.
type receipt struct {
	BatchID     string     `json:"batch_id"`
	ProcessedAt *time.Time `json:"processed_at"`
	Events      int        `json:"events"`
	Duplicates  *int       `json:"duplicates"`
	Stored      int        `json:"stored"`
	NotSent     int        `json:"not_sent"`
	Sent        int        `json:"sent"`
	Pending     int        `json:"pending"`
	Paused      *int       `json:"paused"`
	Dead        int        `json:"dead"`
}

// receiptRig posts batches through the real hook and processes them with the real processor.
type receiptRig struct {
	app   *TestApp
	tid   string
	token string
	src   createdSource
	proc  *source.Processor
}

func newReceiptRig(t *testing.T) *receiptRig {
	app := NewTestApp(t)
	tn := app.Tenant("A")
	r := &receiptRig{app: app, tid: tn.ID, token: app.TenantToken(tn)}
	r.src = app.createSource(r.token, tn.ID, `{"name": "prod"}`)
	r.proc = app.App.Processor // driven by the test: the app is not started
	return r
}

// post sends a batch of delivery events with the given event ids under batchID.
func (r *receiptRig) post(t *testing.T, batchID string, eventIDs ...string) {
	t.Helper()
	elems := make([]string, len(eventIDs))
	for i, id := range eventIDs {
		elems[i] = fmt.Sprintf(`{"msys":{"message_event":{"type":"delivery","event_id":%q,"timestamp":"1460989507","rcpt_to":"a%d@example.com","rcpt_meta":{"user_id":"u%d"}}}}`, id, i, i)
	}
	status, body, _ := r.app.Do("POST", "/hooks/sparkpost/"+r.src.ID, "", "["+strings.Join(elems, ",")+"]",
		"Authorization", basicAuth(r.src.Credentials.Username, r.src.Credentials.Password), "X-MessageSystems-Batch-ID", batchID)
	if status != 200 {
		t.Fatalf("hook: %d %s", status, body)
	}
}

func (r *receiptRig) process(t *testing.T) {
	t.Helper()
	if _, err := r.proc.ProcessOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (r *receiptRig) receipt(t *testing.T, batchID string) receipt {
	t.Helper()
	status, body, _ := r.app.Do("GET", "/api/v1/tenants/"+r.tid+"/sources/"+r.src.ID+"/batches/"+batchID, r.token, nil)
	var out receipt
	if status != 200 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("receipt %s: %d %s", batchID, status, body)
	}
	if out.Duplicates == nil || out.Paused == nil {
		t.Fatalf("receipt %s lacks duplicates or paused: %s", batchID, body)
	}
	if out.ProcessedAt != nil && (out.Events != *out.Duplicates+out.Stored ||
		out.Stored != out.NotSent+out.Sent+out.Pending+*out.Paused+out.Dead) {
		t.Fatalf("receipt %s does not add up (events = duplicates + stored, stored = not_sent + sent + pending + paused + dead): %s", batchID, body)
	}
	return out
}

// TestReceiptCountsDuplicates: SparkPost's own sample batches reuse one event_id, so a batch of
// 19 stores 2; the receipt says the other 17 were duplicates instead of leaving them unexplained.
// A duplicate is an event whose event_id was stored before, in this batch or an earlier one.
func TestReceiptCountsDuplicates(t *testing.T) {
	r := newReceiptRig(t)
	ids := make([]string, 19)
	for i := range ids {
		ids[i] = []string{"sample-a", "sample-b"}[min(i, 1)] // sample-a once, sample-b 18 times
	}
	r.post(t, "sample", ids...)
	if got := r.receipt(t, "sample"); got.ProcessedAt != nil || got.Events != 0 || *got.Duplicates != 0 {
		t.Fatalf("receipt before processing: %+v; want no processed_at and nothing counted yet", got)
	}
	r.process(t)
	got := r.receipt(t, "sample")
	if got.ProcessedAt == nil || got.Events != 19 || *got.Duplicates != 17 || got.Stored != 2 || got.Pending != 2 {
		t.Fatalf("sample batch: %+v; want 19 events, 17 duplicates, 2 stored and pending (no write key)", got)
	}

	// A later batch repeating a stored event: that one is its duplicate, the new one is stored.
	r.post(t, "later", "sample-b", "fresh-1")
	r.process(t)
	if got := r.receipt(t, "later"); got.Events != 2 || *got.Duplicates != 1 || got.Stored != 1 {
		t.Fatalf("later batch: %+v; want 2 events, 1 duplicate, 1 stored", got)
	}
	// The earlier receipt is unchanged by a later batch.
	if got := r.receipt(t, "sample"); *got.Duplicates != 17 || got.Stored != 2 {
		t.Fatalf("sample batch after the later one: %+v", got)
	}
}

// TestReceiptShowsPausedEvents: events of a paused source wait for it, and the receipt and the
// event search say paused, not pending; unpaused, they are pending again.
func TestReceiptShowsPausedEvents(t *testing.T) {
	r := newReceiptRig(t)
	one := "/api/v1/tenants/" + r.tid + "/sources/" + r.src.ID
	if status, body, _ := r.app.Do("PATCH", one, r.token, `{"paused": true}`); status != 200 {
		t.Fatalf("pause: %d %s", status, body)
	}
	r.post(t, "while-paused", "p-1", "p-2", "p-1")
	r.process(t)
	got := r.receipt(t, "while-paused")
	if got.Events != 3 || *got.Duplicates != 1 || got.Stored != 2 || *got.Paused != 2 || got.Pending != 0 {
		t.Fatalf("paused source's batch: %+v; want 3 events, 1 duplicate, 2 stored and paused, none pending", got)
	}
	page := r.app.events(r.token, "/api/v1/tenants/"+r.tid+"/email-events?event_ids=p-1,p-2")
	if len(page.Results) != 2 {
		t.Fatalf("email-events: %d results; want 2", len(page.Results))
	}
	for _, e := range page.Results {
		if e.Switchboard.Status != "paused" {
			t.Fatalf("event %s of a paused source has status %q; want paused", e.EventID, e.Switchboard.Status)
		}
	}
	if status, body, _ := r.app.Do("PATCH", one, r.token, `{"paused": false}`); status != 200 {
		t.Fatalf("unpause: %d %s", status, body)
	}
	if got := r.receipt(t, "while-paused"); *got.Paused != 0 || got.Pending != 2 {
		t.Fatalf("after unpausing: %+v; want 2 pending, none paused", got)
	}
}

// TestInboxBacklogGauges: /metrics shows the committed batches that wait for the processor and
// the age of the oldest, and both return to 0 once it has run.
func TestInboxBacklogGauges(t *testing.T) {
	r := newReceiptRig(t)
	gauge := func(name string) string {
		t.Helper()
		_, body, _ := r.app.Do("GET", "/metrics", "", nil)
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				return v
			}
		}
		t.Fatalf("/metrics has no %s", name)
		return ""
	}
	if got := gauge("switchboard_inbox_unprocessed_batches"); got != "0" {
		t.Fatalf("backlog before any batch: %s", got)
	}
	r.post(t, "backlog-1", "e1", "e2")
	r.post(t, "backlog-2", "e3")
	if got := gauge("switchboard_inbox_unprocessed_batches"); got != "2" {
		t.Fatalf("backlog with two batches committed and the processor idle: %s", got)
	}
	if got := gauge("switchboard_inbox_oldest_unprocessed_age_seconds"); got == "0" || strings.HasPrefix(got, "-") {
		t.Fatalf("oldest age with a batch waiting: %s", got)
	}
	background := `switchboard_store_writer_transactions_total{lane="background"}`
	before, _ := strconv.Atoi(gauge(background))
	if n, err := r.proc.ProcessOnce(t.Context()); err != nil || n != 2 {
		t.Fatalf("ProcessOnce = %d, %v", n, err)
	}
	if b, a := gauge("switchboard_inbox_unprocessed_batches"), gauge("switchboard_inbox_oldest_unprocessed_age_seconds"); b != "0" || a != "0" {
		t.Fatalf("after processing: backlog %s, age %s", b, a)
	}
	// Processing writes in the writer's background lane, and /metrics shows its transactions.
	if after, _ := strconv.Atoi(gauge(background)); after < before+2 {
		t.Fatalf("%s went from %d to %d over processing two batches", background, before, after)
	}
	if got := gauge(`switchboard_store_writer_busy_seconds_total{lane="foreground"}`); got == "0" {
		t.Fatal("the writer's foreground lane shows no busy time after two hook commits")
	}
}

// A tenant whose batches waiting to be processed reach its bound is told to come back (503 with
// Retry-After) instead of growing the inbox; another tenant's hooks go on, and once the processor
// has caught up the tenant's next batch is taken.
func TestInboxBacklogBound(t *testing.T) {
	app := NewTestApp(t, func(c *server.Config) { c.Sources.InboxBacklog = 300 }) // bytes: about two small batches
	proc := app.App.Processor                                                     // driven by the test: the app is not started
	type sender struct {
		rig *receiptRig
		n   int
	}
	newSender := func(name string) *sender {
		tn := app.Tenant(name)
		r := &receiptRig{app: app, tid: tn.ID, token: app.TenantToken(tn)}
		r.src = app.createSource(r.token, tn.ID, `{"name": "prod"}`)
		return &sender{rig: r}
	}
	post := func(s *sender) (int, []byte, http.Header) {
		s.n++
		batch := fmt.Sprintf(`[{"msys":{"message_event":{"type":"delivery","event_id":"%s-%d","timestamp":"1460989507","rcpt_to":"a@example.com","rcpt_meta":{"user_id":"u1"}}}}]`, s.rig.tid, s.n)
		return app.Do("POST", "/hooks/sparkpost/"+s.rig.src.ID, "", batch,
			"Authorization", basicAuth(s.rig.src.Credentials.Username, s.rig.src.Credentials.Password))
	}
	a, b := newSender("A"), newSender("B")
	for i := 0; ; i++ {
		status, body, h := post(a)
		if status == 200 {
			if i > 2 {
				t.Fatalf("batch %d of about 200 bytes accepted past a 300-byte bound", i+1)
			}
			continue
		}
		if status != 503 || h.Get("Retry-After") != "5" || !strings.Contains(string(body), "waiting to be processed") {
			t.Fatalf("over the bound: %d %s (Retry-After %q), want 503 naming the backlog", status, body, h.Get("Retry-After"))
		}
		if i < 1 {
			t.Fatalf("the first batch was refused: %s", body)
		}
		break
	}
	if status, body, _ := post(b); status != 200 {
		t.Fatalf("another tenant's batch while A is over its bound: %d %s", status, body)
	}
	if _, err := proc.ProcessOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := post(a); status != 200 {
		t.Fatalf("after the processor caught up: %d %s", status, body)
	}
	_, metrics, _ := app.Do("GET", "/metrics", "", nil)
	if !strings.Contains(string(metrics), `switchboard_hook_bodies_refused_total{reason="inbox_backlog"} 1`) {
		t.Fatal("/metrics does not count the refusal under reason inbox_backlog")
	}
}
