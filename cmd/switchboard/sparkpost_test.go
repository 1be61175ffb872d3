package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/e2e"
	"github.com/switchboard-hub/switchboard/internal/fakesegment"
)

// segmentNames is SPEC §5.2's table, written out independently of the code under test.
var segmentNames = map[string]string{
	"delivery": "Email Delivered", "bounce": "Email Bounced", "out_of_band": "Email Bounced",
	"open": "Email Opened", "amp_open": "Email Opened", "click": "Email Link Clicked", "amp_click": "Email Link Clicked",
	"spam_complaint": "Email Marked as Spam", "list_unsubscribe": "Unsubscribed", "link_unsubscribe": "Unsubscribed",
	"injection": "Email Sent", "delay": "Email Deferred", "policy_rejection": "Email Dropped",
	"generation_failure": "Email Dropped", "generation_rejection": "Email Dropped",
}

// setupSparkPost creates a tenant whose write key points at the fake Segment, with a source.
func setupSparkPost(t *testing.T, p *proc, op string, fake *fakesegment.Server, writeKey string) *sparkpostSetup {
	t.Helper()
	st, err := e2e.NewSparkPostTenant(&e2e.Client{Base: p.URL(), Token: op}, "Acme", fake.URL, writeKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(st.WebhookURL, "/hooks/sparkpost/"+st.SourceID) || st.Pass == "" {
		t.Fatalf("source: %+v", st)
	}
	return &sparkpostSetup{st}
}

type sparkpostSetup struct{ *e2e.SparkPostTenant }

func (s *sparkpostSetup) post(t *testing.T, _ *proc, batch []byte, batchID string) (int, []byte) {
	t.Helper()
	status, body, err := s.Post(batch, batchID)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

// sendable counts the events of a batch that SPEC §5.2 sends to Segment.
func sendable(t *testing.T, batch []byte) int {
	var elems []map[string]map[string]map[string]any
	if err := json.Unmarshal(batch, &elems); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range elems {
		for _, inner := range e["msys"] {
			if _, ok := segmentNames[fmt.Sprint(inner["type"])]; ok {
				n++
			}
		}
	}
	return n
}

func TestSparkPostToSegmentEndToEnd(t *testing.T) {
	fake := fakesegment.New()
	defer fake.Close()
	p := startServe(t, filepath.Join(t.TempDir(), "data"))
	s := setupSparkPost(t, p, p.operatorToken(t), fake, "wk_e2e_secret_0001")

	batch, err := os.ReadFile("testdata/sparkpost-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := s.post(t, p, []byte(`[{"msys":{}}]`), ""); status != 200 {
		t.Fatalf("ping: %d %s", status, body)
	}
	if status, body := s.post(t, p, batch, "batch-0001"); status != 200 {
		t.Fatalf("batch: %d %s", status, body)
	}
	if !fake.WaitUnique(s.WriteKey, 4, 90*time.Second) {
		t.Fatalf("fake Segment got %d of 4 messages", len(fake.Unique(s.WriteKey)))
	}
	byEvent := map[string]fakesegment.Message{}
	for _, m := range fake.Unique(s.WriteKey) {
		byEvent[fmt.Sprint(m.Properties["event_id"])] = m
	}
	anon := sha256.Sum256([]byte("bob@example.com"))
	cases := []struct {
		eventID, name, userID, anonymousID string
	}{
		{"92356927693813856", "Email Delivered", "user-ada", ""},
		{"92356927693813857", "Email Opened", "", hex.EncodeToString(anon[:])},
		{"92356927693813858", "Email Link Clicked", "user-ada-2", ""},
		{"92356927693813859", "Email Bounced", "user-nobody", ""},
	}
	for _, c := range cases {
		m, ok := byEvent[c.eventID]
		if !ok {
			t.Errorf("event %s did not reach Segment", c.eventID)
			continue
		}
		integration, _ := m.Context["integration"].(map[string]any)
		if m.Type != "track" || m.Event != c.name || m.UserID != c.userID || m.AnonymousID != c.anonymousID ||
			integration["name"] != "sparkpost" || !strings.HasPrefix(m.MessageID, "sp-") || len(m.MessageID) > 100 {
			t.Errorf("event %s arrived as %+v", c.eventID, m)
		}
	}
	click := byEvent["92356927693813858"]
	if click.Properties["link_url"] != "https://example.com/sale" || click.Properties["target_link_url"] != "https://example.com/sale" ||
		click.Context["userAgent"] != "Mozilla/5.0 (iPhone)" || click.Context["ip"] != "203.0.113.7" {
		t.Errorf("click properties/context: %+v / %+v", click.Properties, click.Context)
	}
	delivered := byEvent["92356927693813856"]
	if delivered.Properties["email_id"] != "000443ee14578172be22" || delivered.Properties["campaign_name"] != "spring-sale" ||
		delivered.Properties["num_retries"] != "0" || delivered.Properties["subaccount_id"] != float64(101) ||
		!delivered.Timestamp.Equal(time.Unix(1460989507, 0)) {
		t.Errorf("delivery properties: %+v at %s", delivered.Properties, delivered.Timestamp)
	}
	traits, _ := delivered.Context["traits"].(map[string]any)
	if traits["email"] != "ada@example.com" {
		t.Errorf("context.traits.email = %v", traits["email"])
	}

	// SparkPost re-sends the same batch: 200, nothing stored or sent twice. The same events in a
	// new batch id are deduplicated by event_id.
	if status, body := s.post(t, p, batch, "batch-0001"); status != 200 || !strings.Contains(string(body), `"duplicate":true`) {
		t.Fatalf("re-sent batch: %d %s", status, body)
	}
	if status, _ := s.post(t, p, batch, "batch-0002"); status != 200 {
		t.Fatal("same events, new batch id")
	}

	// Reading it back.
	var events struct {
		Results []struct {
			Type        string
			EventID     string `json:"event_id"`
			Switchboard struct{ Status, Reason string }
		}
		TotalCount int `json:"total_count"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, body := p.do(t, "GET", "/api/v1/tenants/"+s.ID+"/email-events", s.Token, "")
		json.Unmarshal(body, &events)
		delivered := 0
		for _, r := range events.Results {
			if r.Switchboard.Status == "delivered" {
				delivered++
			}
		}
		if delivered == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	statuses := map[string]string{}
	for _, r := range events.Results {
		statuses[r.Type] = r.Switchboard.Status
	}
	if events.TotalCount != 7 || statuses["delivery"] != "delivered" || statuses["initial_open"] != "not_sent" ||
		statuses["relay_injection"] != "not_sent" || statuses["sms_status"] != "not_sent" {
		t.Fatalf("email-events: total %d, statuses %v", events.TotalCount, statuses)
	}
	status, body := p.do(t, "GET", "/api/v1/tenants/"+s.ID+"/sources/"+s.SourceID+"/batches/batch-0001", s.Token, "")
	if status != 200 || !strings.Contains(string(body), `"events":7`) || !strings.Contains(string(body), `"sent":4`) {
		t.Fatalf("batch receipt: %d %s", status, body)
	}
	if n := len(fake.Messages(s.WriteKey)); n != 4 {
		t.Fatalf("Segment received %d messages; every event must be sent exactly once", n)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(p.Stderr.String(), s.WriteKey) || strings.Contains(p.Stderr.String(), s.Pass) {
		t.Fatal("a secret reached the log")
	}
}

// TestSparkPostSamplesReachSegment posts the public SparkPost sample batches (when ../shared is
// beside the project) and checks every mapped event arrives under its Segment name.
func TestSparkPostSamplesReachSegment(t *testing.T) {
	dir := "../../../shared/sparkpost-samples"
	files := []string{"webhook-batch-live-2017-java-sparkpost.json", "webhook-batch-all-classes-2016-gosparkpost.json", "webhook-batch-all-types-SYNTHESIZED.json"}
	if _, err := os.Stat(dir); err != nil {
		t.Skip("shared SparkPost samples are not beside the project")
	}
	fake := fakesegment.New()
	defer fake.Close()
	p := startServe(t, filepath.Join(t.TempDir(), "data"))
	op := p.operatorToken(t)
	for i, f := range files {
		batch, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		// The samples reuse one event_id for every event, and Switchboard keeps one event per
		// event_id; give each its own id so that every type is mapped and sent.
		batch = uniqueEventIDs(t, batch, i)
		key := fmt.Sprintf("wk_sample_%d", i)
		s := setupSparkPost(t, p, op, fake, key)
		if status, body := s.post(t, p, batch, ""); status != 200 {
			t.Fatalf("%s: %d %s", f, status, body)
		}
		want := sendable(t, batch)
		if !fake.WaitUnique(key, want, 90*time.Second) {
			t.Fatalf("%s: %d of %d mapped events reached Segment", f, len(fake.Unique(key)), want)
		}
		for _, m := range fake.Unique(key) {
			if segmentNames[fmt.Sprint(m.Properties["type"])] != m.Event {
				t.Errorf("%s: type %v arrived as %q", f, m.Properties["type"], m.Event)
			}
		}
	}
	p.stop(t)
}

// uniqueEventIDs rewrites each event's event_id to a distinct value.
func uniqueEventIDs(t *testing.T, batch []byte, file int) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(batch))
	dec.UseNumber()
	var elems []map[string]map[string]map[string]any
	if err := dec.Decode(&elems); err != nil {
		t.Fatal(err)
	}
	for i, e := range elems {
		for _, inner := range e["msys"] {
			if _, ok := inner["event_id"]; ok {
				inner["event_id"] = fmt.Sprintf("%d%04d", file+1, i)
			}
		}
	}
	out, _ := json.Marshal(elems)
	return out
}

func TestSparkPostDuplicateEventIDsAreStoredOnce(t *testing.T) {
	batch, err := os.ReadFile("../../../shared/sparkpost-samples/webhook-batch-all-classes-2016-gosparkpost.json")
	if err != nil {
		t.Skip("shared SparkPost samples are not beside the project")
	}
	fake := fakesegment.New()
	defer fake.Close()
	p := startServe(t, filepath.Join(t.TempDir(), "data"))
	s := setupSparkPost(t, p, p.operatorToken(t), fake, "wk_dupes")
	if status, body := s.post(t, p, batch, "dupes-1"); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	// 18 events share one event_id; sms_status has none and gets a hash of its content.
	deadline := time.Now().Add(60 * time.Second)
	var events struct {
		TotalCount int `json:"total_count"`
	}
	for time.Now().Before(deadline) {
		_, body := p.do(t, "GET", "/api/v1/tenants/"+s.ID+"/email-events", s.Token, "")
		json.Unmarshal(body, &events)
		if events.TotalCount == 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if events.TotalCount != 2 {
		t.Fatalf("stored %d events; want 2 (one per distinct event_id)", events.TotalCount)
	}
	p.stop(t)
}

// TestSparkPostSurvivesKill acknowledges batches while Segment is down, kills the server with
// SIGKILL, restarts it, and checks every acknowledged event reaches Segment once it recovers.
func TestSparkPostSurvivesKill(t *testing.T) {
	fake := fakesegment.New()
	defer fake.Close()
	fake.Behave(func(string) fakesegment.Reply { return fakesegment.Reply{Status: 503} })
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dataDir)
	s := setupSparkPost(t, p, p.operatorToken(t), fake, "wk_kill")
	acked := 0
	for b := range 20 {
		var events []string
		for i := range 50 {
			events = append(events, fmt.Sprintf(`{"msys":{"message_event":{"type":"delivery","event_id":"%d","timestamp":"1460989507","rcpt_to":"u%d@example.com","rcpt_meta":{"user_id":"u%d"}}}}`, b*1000+i, i, i))
		}
		if status, body := s.post(t, p, []byte("["+strings.Join(events, ",")+"]"), fmt.Sprintf("kill-%d", b)); status != 200 {
			t.Fatalf("batch %d: %d %s", b, status, body)
		}
		acked += len(events)
	}
	p.Kill()

	fake.Behave(nil)
	p2 := startServe(t, dataDir)
	if !fake.WaitUnique(s.WriteKey, acked, 90*time.Second) {
		t.Fatalf("after SIGKILL and restart %d of %d acknowledged events reached Segment", len(fake.Unique(s.WriteKey)), acked)
	}
	if n := len(fake.Unique(s.WriteKey)); n != acked {
		t.Fatalf("unique messageIds %d != acknowledged %d", n, acked)
	}
	p2.stop(t)
}
