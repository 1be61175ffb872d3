package delivery_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// received is one POST a test receiver got.
type received struct {
	body    []byte
	sig     string
	idem    string
	ctype   string
	validOK bool
}

// receiver is a workflow endpoint on 127.0.0.1 that answers with the status answer() gives.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(n int) (status int, retryAfter string)
}

func newReceiver(t *testing.T, secret string, answer func(n int) (int, string)) *receiver {
	t.Helper()
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		sig := req.Header.Get(delivery.HeaderSignature)
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, received{body: body, sig: sig, idem: req.Header.Get(delivery.HeaderIdempotency),
			ctype: req.Header.Get("Content-Type"), validOK: hmac.Equal([]byte(sig), []byte("sha256="+hex.EncodeToString(mac.Sum(nil))))})
		r.mu.Unlock()
		status, ra := http.StatusOK, ""
		if r.answer != nil {
			status, ra = r.answer(n)
		}
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(status)
		io.WriteString(w, "answer body")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) calls() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

type fixture struct {
	db     *store.DB
	box    *auth.Box
	tenant *store.Tenant
	sender *delivery.WorkflowSender
	// recipients counts calls to the recipient function, by distinct id.
	mu         sync.Mutex
	recipients map[string]int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "switchboard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	box, _ := auth.NewBox(bytes.Repeat([]byte{3}, 32))
	tn, err := db.CreateTenant(context.Background(), "Acme")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, box: box, tenant: tn, recipients: map[string]int{}}
	recipient := func(_ context.Context, tenantID, distinctID string) (json.RawMessage, error) {
		f.mu.Lock()
		f.recipients[distinctID]++
		f.mu.Unlock()
		return json.Marshal(map[string]any{"distinct_id": distinctID, "$email": []string{distinctID + "@example.com"}})
	}
	f.sender = delivery.NewWorkflowSender(db, box, recipient, outbound.LoopbackOnly(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	return f
}

func (f *fixture) workflow(t *testing.T, url, secret string) *store.Workflow {
	t.Helper()
	w := &store.Workflow{ID: domain.NewID("wfl_"), TenantID: f.tenant.ID, Name: "welcome", Event: "Signed Up", URL: url,
		SecretEnc: f.box.Seal(secret), SecretHint: domain.Hint(secret)}
	if err := f.db.CreateWorkflow(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

func (f *fixture) delivery(t *testing.T, w *store.Workflow, messageID, distinctID string) *store.Delivery {
	t.Helper()
	payload, _ := json.Marshal(delivery.WorkflowPayload{DistinctID: distinctID, Event: delivery.WorkflowEvent{
		Name: "Signed Up", Properties: json.RawMessage(`{"plan":"pro","n":12345678901234567890}`),
		Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), MessageID: messageID,
	}})
	return &store.Delivery{ID: 1, TenantID: f.tenant.ID, Target: domain.TargetWorkflow, OriginID: w.ID, MessageID: messageID, Payload: payload}
}

func TestWorkflowSenderPostsSignedRequest(t *testing.T) {
	f := newFixture(t)
	const secret = "sbw_test-secret-0123456789"
	rcv := newReceiver(t, secret, nil)
	w := f.workflow(t, rcv.URL+"/hooks/welcome", secret)
	res := f.sender.Send(context.Background(), f.tenant.ID, []*store.Delivery{f.delivery(t, w, "msg-1", "u1")})
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("results: %+v", res)
	}
	calls := rcv.calls()
	if len(calls) != 1 {
		t.Fatalf("%d POSTs, want 1", len(calls))
	}
	c := calls[0]
	if !c.validOK || !strings.HasPrefix(c.sig, "sha256=") || c.idem != "msg-1" || c.ctype != "application/json" {
		t.Fatalf("headers: signature %q valid=%v, Idempotency-Key %q, Content-Type %q", c.sig, c.validOK, c.idem, c.ctype)
	}
	var body struct {
		Workflow   string `json:"workflow"`
		WorkflowID string `json:"workflow_id"`
		Event      struct {
			Name       string          `json:"name"`
			Properties json.RawMessage `json:"properties"`
			Timestamp  time.Time       `json:"timestamp"`
			MessageID  string          `json:"message_id"`
		} `json:"event"`
		Recipient map[string]any `json:"recipient"`
	}
	if err := json.Unmarshal(c.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Workflow != "welcome" || body.WorkflowID != w.ID || body.Event.Name != "Signed Up" || body.Event.MessageID != "msg-1" ||
		!body.Event.Timestamp.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) ||
		string(body.Event.Properties) != `{"plan":"pro","n":12345678901234567890}` || body.Recipient["distinct_id"] != "u1" {
		t.Fatalf("body: %s", c.body)
	}
}

func TestWorkflowSenderFailures(t *testing.T) {
	const secret = "sbw_test-secret-0123456789"
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		wantAfter  time.Duration
		wantErr    string
	}{
		{"429 with Retry-After", 429, "7", 7 * time.Second, "429 answer body"},
		{"503 with Retry-After", 503, "3", 3 * time.Second, "503 answer body"},
		{"500 without", 500, "", 0, "500 answer body"},
		{"404 is retried too", 404, "", 0, "404 answer body"},
		{"401 is retried too", 401, "", 0, "401 answer body"},
		{"redirect is not followed", 302, "", 0, "302 redirect not followed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rcv := newReceiver(t, secret, func(int) (int, string) { return tc.status, tc.retryAfter })
			w := f.workflow(t, rcv.URL, secret)
			res := f.sender.Send(context.Background(), f.tenant.ID, []*store.Delivery{f.delivery(t, w, "m", "u")})
			if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), tc.wantErr) || res[0].RetryAfter != tc.wantAfter {
				t.Fatalf("result %+v, want error containing %q and RetryAfter %v", res[0], tc.wantErr, tc.wantAfter)
			}
			if len(rcv.calls()) != 1 {
				t.Fatalf("%d requests, want exactly 1 (no redirect followed)", len(rcv.calls()))
			}
		})
	}
}

func TestWorkflowSenderTimeoutAndUnreachable(t *testing.T) {
	f := newFixture(t)
	const secret = "sbw_test-secret-0123456789"
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	f.sender.Timeout = 100 * time.Millisecond
	w := f.workflow(t, slow.URL, secret)
	res := f.sender.Send(context.Background(), f.tenant.ID, []*store.Delivery{f.delivery(t, w, "m", "u")})
	if res[0].Err == nil || res[0].Err.Error() != "could not connect to "+strings.TrimPrefix(slow.URL, "http://") {
		t.Fatalf("slow receiver: %+v", res[0])
	}

	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL + "/path?token=do-not-show"
	gone.Close()
	w2 := f.workflow(t, url, secret)
	res = f.sender.Send(context.Background(), f.tenant.ID, []*store.Delivery{f.delivery(t, w2, "m", "u")})
	if res[0].Err == nil || strings.Contains(res[0].Err.Error(), "do-not-show") || !strings.HasPrefix(res[0].Err.Error(), "could not connect to 127.0.0.1:") {
		t.Fatalf("unreachable receiver: %v (the URL must not be in last_error, nor the port's state)", res[0].Err)
	}
}

func TestWorkflowSenderDeletedWorkflowAndBadPayload(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, "sbw_test-secret-0123456789", nil)
	w := f.workflow(t, rcv.URL, "sbw_test-secret-0123456789")
	d := f.delivery(t, w, "m", "u")
	bad := *d
	bad.Payload = []byte(`not json`)
	if err := f.db.DeleteWorkflow(context.Background(), f.tenant.ID, w.ID); err != nil {
		t.Fatal(err)
	}
	res := f.sender.Send(context.Background(), f.tenant.ID, []*store.Delivery{d})
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "no longer exists") {
		t.Fatalf("deleted workflow: %+v", res[0])
	}
	w2 := f.workflow(t, rcv.URL, "sbw_test-secret-0123456789")
	bad.OriginID = w2.ID
	if res := f.sender.Send(context.Background(), f.tenant.ID, []*store.Delivery{&bad}); res[0].Err == nil {
		t.Fatal("a payload that is not JSON was sent")
	}
	if len(rcv.calls()) != 0 {
		t.Fatalf("%d requests for deliveries that cannot be sent", len(rcv.calls()))
	}
}

// The recipient is read when the POST goes out, once per delivery, so it is the profile as it
// is then (not as it was when the track arrived).
func TestWorkflowSenderBuildsRecipientAtSendTime(t *testing.T) {
	f := newFixture(t)
	const secret = "sbw_test-secret-0123456789"
	rcv := newReceiver(t, secret, nil)
	w := f.workflow(t, rcv.URL, secret)
	ds := []*store.Delivery{f.delivery(t, w, "m1", "a"), f.delivery(t, w, "m2", "b"), f.delivery(t, w, "m3", "a")}
	for i, r := range f.sender.Send(context.Background(), f.tenant.ID, ds) {
		if r.Err != nil {
			t.Fatalf("delivery %d: %v", i, r.Err)
		}
	}
	if f.recipients["a"] != 2 || f.recipients["b"] != 1 {
		t.Fatalf("recipient lookups: %v", f.recipients)
	}
	seen := map[string]bool{}
	for _, c := range rcv.calls() {
		seen[c.idem] = c.validOK
	}
	if len(seen) != 3 || !seen["m1"] || !seen["m2"] || !seen["m3"] {
		t.Fatalf("idempotency keys / signatures: %v", seen)
	}
}

func TestHeaderSafeMessageIDs(t *testing.T) {
	for in, want := range map[string]string{
		"msg-1":          "msg-1",
		"a\r\nX-Evil: 1": "a%0D%0AX-Evil: 1",
		"nul\x00del\x7f": "nul%00del%7F",
		"100%":           "100%25",
		"é":              "%C3%A9",
	} {
		got := delivery.HeaderSafe(in)
		if got != want {
			t.Errorf("HeaderSafe(%q) = %q, want %q", in, got, want)
		}
		if strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
			t.Errorf("%q is not header-safe", got)
		}
	}
	if delivery.HeaderSafe("a\nb") == delivery.HeaderSafe("a\rb") {
		t.Error("distinct ids must stay distinct")
	}
}
