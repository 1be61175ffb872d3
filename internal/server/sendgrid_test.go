package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/fakesegment"
	"github.com/switchboard-hub/switchboard/internal/source/sendgrid"
)

// sendgridSigner signs requests as SendGrid's Signed Event Webhook does.
type sendgridSigner struct {
	key       *ecdsa.PrivateKey
	PublicKey string // base64 DER, as SendGrid's settings page shows it
}

func newSendGridSigner(t *testing.T) *sendgridSigner {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sendgrid.PublicKeyText(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &sendgridSigner{key: key, PublicKey: pub}
}

// headers returns the signature headers for body, signed at ts.
func (s *sendgridSigner) headers(t *testing.T, body string, ts time.Time) []string {
	t.Helper()
	stamp := strconv.FormatInt(ts.Unix(), 10)
	sig, err := sendgrid.Sign(s.key, stamp, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return []string{sendgrid.SignatureHeader, sig, sendgrid.TimestampHeader, stamp}
}

// sendgridEvents is one SendGrid post: an event of each kind Segment receives, for user u-42.
func sendgridEvents(prefix string) string {
	ev := func(typ, extra string) string {
		return fmt.Sprintf(`{"email":"Reader@Example.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":%q,`+
			`"category":["welcome","onboarding"],"sg_event_id":"%s-%s","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","user_id":"u-42"%s}`,
			typ, prefix, typ, extra)
	}
	return "[" + strings.Join([]string{
		ev("processed", ""),
		ev("delivered", `,"response":"250 OK","ip":"168.1.1.1"`),
		ev("open", `,"useragent":"Mozilla/5.0","ip":"203.0.113.9","sg_machine_open":false`),
		ev("click", `,"useragent":"Mozilla/5.0","ip":"203.0.113.9","url":"https://example.com/welcome","url_offset":{"index":0,"type":"html"}`),
		ev("bounce", `,"reason":"500 unknown recipient","status":"5.0.0","type":"bounce","bounce_classification":"Invalid Address"`),
		ev("group_unsubscribe", `,"asm_group_id":10,"useragent":"Mozilla/5.0","ip":"203.0.113.9","url":"https://example.com/unsub"`),
	}, ",") + "]"
}

func TestSendGridSourceAdmin(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	base := "/api/v1/tenants/" + a.ID + "/sources"
	signer := newSendGridSigner(t)
	for _, sc := range []Scenario{
		{Name: "signature needs a public key", Method: "POST", URL: base, Token: ta, Body: `{"name": "sg", "provider": "sendgrid"}`,
			ExpectedStatus: 400, ExpectedContent: []string{"public_key: required with auth signature"}},
		{Name: "public key not a key", Method: "POST", URL: base, Token: ta, Body: `{"name": "sg", "provider": "sendgrid", "public_key": "bm90IGEga2V5"}`,
			ExpectedStatus: 400, ExpectedContent: []string{"public_key: not a public key"}},
		{Name: "SparkPost types are not SendGrid's", Method: "POST", URL: base, Token: ta,
			Body:           `{"name": "sg", "provider": "sendgrid", "auth": "basic", "events": ["delivery"]}`,
			ExpectedStatus: 400, ExpectedContent: []string{`events: \"delivery\" is not a SendGrid event type`}},
		{Name: "initial opens are SparkPost's", Method: "POST", URL: base, Token: ta,
			Body:           `{"name": "sg", "provider": "sendgrid", "auth": "basic", "forward_initial_opens": true}`,
			ExpectedStatus: 400, ExpectedContent: []string{"forward_initial_opens: SparkPost only"}},
		{Name: "unknown provider", Method: "POST", URL: base, Token: ta, Body: `{"name": "x", "provider": "mailgun"}`,
			ExpectedStatus: 400, ExpectedContent: []string{"provider: must be one of sendgrid, sparkpost"}},
	} {
		sc.Run(t, app)
	}

	signed := app.createSource(ta, a.ID, `{"name": "signed", "provider": "sendgrid", "public_key": "`+signer.PublicKey+`", "events": ["delivered", "open"]}`)
	if signed.Auth != "signature" || signed.Credentials.Username != "" || signed.Credentials.ClientID != "" ||
		signed.WebhookURL != "http://switchboard.test/hooks/sendgrid/"+signed.ID {
		t.Fatalf("signed source: %+v", signed)
	}
	status, body, _ := app.Do("GET", base+"/"+signed.ID, ta, nil)
	var got map[string]any
	json.Unmarshal(body, &got)
	if status != 200 || got["provider"] != "sendgrid" || got["public_key"] != signer.PublicKey || got["auth"] != "signature" {
		t.Fatalf("GET signed source: %d %s", status, body)
	}
	rotated := newSendGridSigner(t)
	for _, sc := range []Scenario{
		{Name: "a signature source has no credentials to rotate", Method: "POST", URL: base + "/" + signed.ID + "/rotate", Token: ta,
			ExpectedStatus: 400, ExpectedContent: []string{"has no credentials to rotate"}},
		{Name: "the key of a signature source cannot be removed", Method: "PATCH", URL: base + "/" + signed.ID, Token: ta, Body: `{"public_key": ""}`,
			ExpectedStatus: 400, ExpectedContent: []string{"public_key: required"}},
		{Name: "auth cannot change", Method: "PATCH", URL: base + "/" + signed.ID, Token: ta, Body: `{"auth": "basic"}`,
			ExpectedStatus: 400, ExpectedContent: []string{"auth: cannot be changed"}},
		{Name: "the key is replaced (SendGrid made a new one)", Method: "PATCH", URL: base + "/" + signed.ID, Token: ta,
			Body: `{"public_key": "` + rotated.PublicKey + `"}`, ExpectedStatus: 200, ExpectedContent: []string{rotated.PublicKey}},
	} {
		sc.Run(t, app)
	}
	basic := app.createSource(ta, a.ID, `{"name": "basic", "provider": "sendgrid", "auth": "basic"}`)
	if basic.Auth != "basic" || basic.Credentials.Username == "" || basic.Credentials.Password == "" {
		t.Fatalf("basic SendGrid source: %+v", basic)
	}
}

func TestSendGridHookAuth(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	signer := newSendGridSigner(t)
	signed := app.createSource(ta, a.ID, `{"name": "signed", "provider": "sendgrid", "public_key": "`+signer.PublicKey+`"}`)
	basic := app.createSource(ta, a.ID, `{"name": "basic", "provider": "sendgrid", "auth": "basic"}`)
	both := app.createSource(ta, a.ID, `{"name": "both", "provider": "sendgrid", "auth": "basic", "public_key": "`+signer.PublicKey+`"}`)
	sparkpost := app.createSource(ta, a.ID, `{"name": "sp"}`)
	body := sendgridEvents("auth")
	now := app.DB.Now()
	creds := func(s createdSource) []string {
		return []string{"Authorization", basicAuth(s.Credentials.Username, s.Credentials.Password)}
	}
	tampered := strings.Replace(body, "u-42", "u-43", 1)
	cases := []struct {
		name    string
		path    string
		body    string
		headers []string
		status  int
		want    string
	}{
		{"signed", "/hooks/sendgrid/" + signed.ID, body, signer.headers(t, body, now), 200, `"accepted":6`},
		{"ping", "/hooks/sendgrid/" + signed.ID, `[]`, signer.headers(t, `[]`, now), 200, `"ping":true`},
		{"unsigned", "/hooks/sendgrid/" + signed.ID, body, nil, 401, sendgrid.SignatureHeader + " is missing"},
		{"body changed after signing", "/hooks/sendgrid/" + signed.ID, tampered, signer.headers(t, body, now), 401, "signature does not match"},
		{"stale timestamp", "/hooks/sendgrid/" + signed.ID, body, signer.headers(t, body, now.Add(-time.Hour)), 401, "away from the server's clock"},
		{"another key", "/hooks/sendgrid/" + signed.ID, body, newSendGridSigner(t).headers(t, body, now), 401, "signature does not match"},
		{"basic with its credentials", "/hooks/sendgrid/" + basic.ID, body, creds(basic), 200, `"accepted":6`},
		{"basic without credentials", "/hooks/sendgrid/" + basic.ID, body, nil, 401, "HTTP Basic"},
		{"basic with a key also needs the signature", "/hooks/sendgrid/" + both.ID, body, creds(both), 401, sendgrid.SignatureHeader},
		{"basic with a key, signed", "/hooks/sendgrid/" + both.ID, body, append(creds(both), signer.headers(t, body, now)...), 200, `"accepted":6`},
		{"a SparkPost source is not a SendGrid hook", "/hooks/sendgrid/" + sparkpost.ID, body, creds(sparkpost), 404, "source not found"},
		{"a SendGrid source is not a SparkPost hook", "/hooks/sparkpost/" + basic.ID, body, creds(basic), 404, "source not found"},
		{"not an array", "/hooks/sendgrid/" + basic.ID, `{"event":"open"}`, creds(basic), 400, "expected a JSON array of SendGrid events"},
	}
	for _, tc := range cases {
		status, got, _ := app.Do("POST", tc.path, "", tc.body, tc.headers...)
		if status != tc.status || !strings.Contains(string(got), tc.want) {
			t.Errorf("%s: %d %s; want %d with %q", tc.name, status, got, tc.status, tc.want)
		}
	}
}

// TestSendGridToSegment follows a SendGrid post through the real hook, processor and Segment
// engine to a fake Segment, and reads the events back from the event store.
func TestSendGridToSegment(t *testing.T) {
	app := NewTestApp(t)
	segment := fakesegment.New()
	t.Cleanup(segment.Close)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	writeKey := app.Secret("wk_sendgrid_0001")
	if status, body, _ := app.Do("PUT", "/api/v1/tenants/"+a.ID+"/segment", ta, map[string]any{"write_key": writeKey, "endpoint": segment.URL}); status != 200 {
		t.Fatalf("segment: %d %s", status, body)
	}
	signer := newSendGridSigner(t)
	src := app.createSource(ta, a.ID, `{"name": "signed", "provider": "sendgrid", "public_key": "`+signer.PublicKey+`"}`)
	app.Start()
	body := sendgridEvents("e2e")
	for range 2 { // SendGrid re-posts on a timeout: the events are stored and sent once
		if status, got, _ := app.Do("POST", "/hooks/sendgrid/"+src.ID, "", body, signer.headers(t, body, app.DB.Now())...); status != 200 {
			t.Fatalf("hook: %d %s", status, got)
		}
	}
	if !segment.WaitUnique(writeKey, 6, time.Minute) {
		t.Fatalf("Segment received %d of 6 messages", len(segment.Unique(writeKey)))
	}
	byEvent := map[string]fakesegment.Message{}
	for _, m := range segment.Unique(writeKey) {
		if !strings.HasPrefix(m.MessageID, "sg-") || m.UserID != "u-42" || m.Type != "track" {
			t.Errorf("message %+v", m)
		}
		integration, _ := m.Context["integration"].(map[string]any)
		if integration["name"] != "sendgrid" || integration["version"] != sendgrid.IntegrationVersion {
			t.Errorf("%s: context.integration %v", m.Event, m.Context["integration"])
		}
		byEvent[m.Event] = m
	}
	for _, name := range []string{"Email Sent", "Email Delivered", "Email Opened", "Email Link Clicked", "Email Bounced", "Unsubscribed"} {
		if _, ok := byEvent[name]; !ok {
			t.Errorf("no %q among %v", name, byEvent)
		}
	}
	if m := byEvent["Email Opened"]; m.Context["ip"] != "203.0.113.9" || m.Context["userAgent"] != "Mozilla/5.0" {
		t.Errorf("open's context: %v", m.Context)
	}
	if m := byEvent["Email Delivered"]; m.Context["ip"] != nil {
		t.Errorf("delivered carries SendGrid's sending ip as the reader's: %v", m.Context)
	}
	if m := byEvent["Email Link Clicked"]; m.Properties["link_url"] != "https://example.com/welcome" || m.Properties["campaign_id"] != "welcome" {
		t.Errorf("click's properties: %v", m.Properties)
	}
	if m := byEvent["Unsubscribed"]; fmt.Sprint(m.Properties["list_id"]) != "10" {
		t.Errorf("group_unsubscribe's list_id: %v", m.Properties)
	}
	if len(segment.Messages(writeKey)) != 6 {
		t.Errorf("Segment received %d messages for 6 events posted twice", len(segment.Messages(writeKey)))
	}

	// The event store has them, delivered once the sender's marks commit, with the filters
	// that mean something for SendGrid.
	events := "/api/v1/tenants/" + a.ID + "/email-events"
	waitFor(t, "six delivered events", func() bool {
		_, got, _ := app.Do("GET", events+"?per_page=10", ta, nil)
		return strings.Count(string(got), `"status":"delivered"`) == 6
	})
	for _, tc := range []struct {
		query string
		n     int
	}{
		{"", 6},
		{"?events=open,click", 2},
		{"?campaigns=welc*", 6},
		{"?recipients=Reader@Example.com", 6},
		{"?events=processed&campaigns=onboarding", 0}, // the first category is the campaign
		{"?transmissions=1", 0},                       // SendGrid events have no transmission
	} {
		status, got, _ := app.Do("GET", events+tc.query, ta, nil)
		var page struct {
			Results []map[string]any
		}
		json.Unmarshal(got, &page)
		if status != 200 || len(page.Results) != tc.n {
			t.Errorf("GET email-events%s: %d, %d results, want %d: %s", tc.query, status, len(page.Results), tc.n, got)
		}
		for _, e := range page.Results {
			if class := e["class"]; class != "delivery" && class != "engagement" {
				t.Errorf("class %v: %v", class, e)
			}
			if sw, _ := e["switchboard"].(map[string]any); sw["status"] != "delivered" {
				t.Errorf("status %v", e["switchboard"])
			}
		}
	}
}
