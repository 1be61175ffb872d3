package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/e2e"
	"github.com/switchboard-hub/switchboard/internal/fakesegment"
	"github.com/switchboard-hub/switchboard/internal/source/sendgrid"
)

// TestSendGridToSegmentEndToEnd runs the real binary: a tenant with a SparkPost source and a
// signed SendGrid source sends both providers' events to one fake Segment workspace.
func TestSendGridToSegmentEndToEnd(t *testing.T) {
	fake := fakesegment.New()
	defer fake.Close()
	p := startServe(t, filepath.Join(t.TempDir(), "data"))
	s := setupSparkPost(t, p, p.operatorToken(t), fake, "wk_e2e_sendgrid_0001")

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sendgrid.PublicKeyText(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"name": "SendGrid", "provider": "sendgrid", "public_key": pub})
	status, created, err := s.Admin.Do("POST", "/api/v1/tenants/"+s.ID+"/sources", body)
	var src struct {
		ID         string
		WebhookURL string `json:"webhook_url"`
		Auth       string
	}
	if err != nil || status != 201 || json.Unmarshal(created, &src) != nil || src.Auth != "signature" ||
		!strings.HasSuffix(src.WebhookURL, "/hooks/sendgrid/"+src.ID) {
		t.Fatalf("SendGrid source: %d %s %v", status, created, err)
	}
	events, err := os.ReadFile("testdata/sendgrid-events.json")
	if err != nil {
		t.Fatal(err)
	}
	sign := func(body []byte) []string {
		stamp := strconv.FormatInt(time.Now().Unix(), 10)
		sig, err := sendgrid.Sign(key, stamp, body)
		if err != nil {
			t.Fatal(err)
		}
		return []string{sendgrid.SignatureHeader, sig, sendgrid.TimestampHeader, stamp}
	}
	hook := &e2e.Client{Base: p.URL()}
	if status, got, err := hook.Do("POST", "/hooks/sendgrid/"+src.ID, events); err != nil || status != 401 {
		t.Fatalf("unsigned post: %d %s %v", status, got, err)
	}
	if status, got, err := hook.Do("POST", "/hooks/sendgrid/"+src.ID, events, sign(events)...); err != nil || status != 200 ||
		!strings.Contains(string(got), `"accepted":7`) {
		t.Fatalf("signed post: %d %s %v", status, got, err)
	}
	batch, err := os.ReadFile("testdata/sparkpost-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	if status, got := s.post(t, p, batch, "batch-0001"); status != 200 {
		t.Fatalf("SparkPost batch: %d %s", status, got)
	}

	const sendgridSent, sparkpostSent = 6, 4 // account_status_change is stored, not sent
	if !fake.WaitUnique(s.WriteKey, sendgridSent+sparkpostSent, 90*time.Second) {
		t.Fatalf("fake Segment got %d of %d messages", len(fake.Unique(s.WriteKey)), sendgridSent+sparkpostSent)
	}
	byID := map[string]fakesegment.Message{}
	providers := map[string]int{}
	for _, m := range fake.Unique(s.WriteKey) {
		integration, _ := m.Context["integration"].(map[string]any)
		providers[fmt.Sprint(integration["name"])]++
		if id, ok := m.Properties["sg_event_id"].(string); ok {
			byID[id] = m
		}
	}
	if providers["sendgrid"] != sendgridSent || providers["sparkpost"] != sparkpostSent {
		t.Errorf("messages by integration: %v", providers)
	}
	anon := sha256.Sum256([]byte("bob@example.com"))
	for _, c := range []struct{ id, name, userID, anonymousID string }{
		{"sg-e2e-processed-0001", "Email Sent", "user-ada", ""},
		{"sg-e2e-deferred-0001", "Email Deferred", "user-ada", ""},
		{"sg-e2e-delivered-0001", "Email Delivered", "user-ada", ""},
		{"sg-e2e-open-0001", "Email Opened", "", fmt.Sprintf("%x", anon)},
		{"sg-e2e-dropped-0001", "Email Dropped", "user-ada-legacy", ""},
		{"sg-e2e-resubscribe-0001", "Resubscribed", "user-ada", ""},
	} {
		m, ok := byID[c.id]
		if !ok {
			t.Errorf("%s did not reach Segment", c.id)
			continue
		}
		if m.Event != c.name || m.UserID != c.userID || m.AnonymousID != c.anonymousID || !strings.HasPrefix(m.MessageID, "sg-") {
			t.Errorf("%s arrived as %+v", c.id, m)
		}
	}
	if open := byID["sg-e2e-open-0001"]; open.Context["ip"] != "203.0.113.7" || open.Properties["campaign_id"] != "spring-sale" {
		t.Errorf("open: context %v, properties %v", open.Context, open.Properties)
	}
	status, got, err := s.Admin.Do("GET", "/api/v1/tenants/"+s.ID+"/email-events?events=account_status_change", nil)
	if err != nil || status != 200 || !strings.Contains(string(got), `"status":"not_sent"`) {
		t.Errorf("the account event: %d %s %v", status, got, err)
	}
}
