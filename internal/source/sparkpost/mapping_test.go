package sparkpost

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/analytics-go/v3"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sourcetest"
)

// event builds a parsed event from the inner object's JSON, failing on a parse error.
func event(tb testing.TB, wrapper, inner string) source.Event {
	tb.Helper()
	ev := ParseEvent(json.RawMessage(`{"msys":{"` + wrapper + `":` + inner + `}}`))
	if ev.ParseError != "" {
		tb.Fatalf("ParseEvent: %s", ev.ParseError)
	}
	return ev
}

// typed returns a minimal sendable event of the given SparkPost type.
func typed(tb testing.TB, typ string) source.Event {
	tb.Helper()
	return event(tb, "message_event", fmt.Sprintf(`{"type":%q,"event_id":"1","timestamp":"1460989507","rcpt_to":"a@example.com","rcpt_meta":{"user_id":"u1"}}`, typ))
}

func TestSegmentEventName(t *testing.T) {
	tests := []struct {
		typ        string
		want       string // "" = stored, not sent
		wantWithIO string // with ForwardInitialOpens
	}{
		{"delivery", "Email Delivered", "Email Delivered"},
		{"bounce", "Email Bounced", "Email Bounced"},
		{"out_of_band", "Email Bounced", "Email Bounced"},
		{"open", "Email Opened", "Email Opened"},
		{"amp_open", "Email Opened", "Email Opened"},
		{"initial_open", "", "Email Opened"},
		{"amp_initial_open", "", "Email Opened"},
		{"click", "Email Link Clicked", "Email Link Clicked"},
		{"amp_click", "Email Link Clicked", "Email Link Clicked"},
		{"spam_complaint", "Email Marked as Spam", "Email Marked as Spam"},
		{"list_unsubscribe", "Unsubscribed", "Unsubscribed"},
		{"link_unsubscribe", "Unsubscribed", "Unsubscribed"},
		{"injection", "Email Sent", "Email Sent"},
		{"delay", "Email Deferred", "Email Deferred"},
		{"policy_rejection", "Email Dropped", "Email Dropped"},
		{"generation_failure", "Email Dropped", "Email Dropped"},
		{"generation_rejection", "Email Dropped", "Email Dropped"},
		{"relay_injection", "", ""},
		{"relay_rejection", "", ""},
		{"relay_delivery", "", ""},
		{"relay_tempfail", "", ""},
		{"relay_permfail", "", ""},
		{"ab_test_completed", "", ""},
		{"ab_test_cancelled", "", ""},
		{"sms_status", "", ""},
		{"teleport", "", ""},
		{"Delivery", "", ""}, // types are exact: SparkPost never varies their case
	}
	for _, tt := range tests {
		for _, fio := range []bool{false, true} {
			want := tt.want
			if fio {
				want = tt.wantWithIO
			}
			name, ok := SegmentEventName(tt.typ, fio)
			if name != want || ok != (want != "") {
				t.Errorf("SegmentEventName(%q, %v) = %q, %v; want %q", tt.typ, fio, name, ok, want)
			}
			// Map agrees: a mappable type is sent under that name, any other is stored only.
			tr, out, reason := Map("ten_1", typed(t, tt.typ), domain.SourceSettings{ForwardInitialOpens: fio})
			if want == "" && (out != source.OutcomeNotSent || reason == "") {
				t.Errorf("Map(%q, fio=%v) = %v %q, want not_sent with a reason", tt.typ, fio, out, reason)
			}
			if want != "" && (out != source.OutcomeSend || tr.Event != want) {
				t.Errorf("Map(%q, fio=%v) = %v %q, want send %q", tt.typ, fio, out, tr.Event, want)
			}
		}
	}
}

func TestMapEventsAllowList(t *testing.T) {
	tests := []struct {
		typ    string
		s      domain.SourceSettings
		wantOK bool
	}{
		{"delivery", domain.SourceSettings{Events: []string{"delivery", "click"}}, true},
		{"click", domain.SourceSettings{Events: []string{"delivery", "click"}}, true},
		{"open", domain.SourceSettings{Events: []string{"delivery", "click"}}, false},
		{"amp_click", domain.SourceSettings{Events: []string{"click"}}, false},
		// The list narrows; it never forwards what the mapping does not.
		{"initial_open", domain.SourceSettings{Events: []string{"initial_open"}}, false},
		{"initial_open", domain.SourceSettings{Events: []string{"initial_open"}, ForwardInitialOpens: true}, true},
		{"relay_delivery", domain.SourceSettings{Events: []string{"relay_delivery"}}, false},
		{"open", domain.SourceSettings{}, true},
	}
	for _, tt := range tests {
		_, out, reason := Map("ten_1", typed(t, tt.typ), tt.s)
		if (out == source.OutcomeSend) != tt.wantOK {
			t.Errorf("%s with %+v: outcome %v (%s), want send=%v", tt.typ, tt.s, out, reason, tt.wantOK)
		}
	}
}

func TestMapIdentity(t *testing.T) {
	sha := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	tests := []struct {
		name     string
		meta     string // rcpt_meta JSON; "" = absent
		rcptTo   string
		s        domain.SourceSettings
		wantUser string
		wantAnon string
		wantOut  source.Outcome
	}{
		{name: "user_id", meta: `{"user_id":"u-1","userId":"u-2"}`, rcptTo: "a@example.com", wantUser: "u-1", wantOut: source.OutcomeSend},
		{name: "userId", meta: `{"userId":"u-2"}`, rcptTo: "a@example.com", wantUser: "u-2", wantOut: source.OutcomeSend},
		{name: "empty user_id falls to userId", meta: `{"user_id":"  ","userId":"u-2"}`, rcptTo: "a@example.com", wantUser: "u-2", wantOut: source.OutcomeSend},
		{name: "numeric id keeps its text", meta: `{"user_id":12345678901234567890}`, rcptTo: "a@example.com", wantUser: "12345678901234567890", wantOut: source.OutcomeSend},
		{name: "custom keys in order", meta: `{"user_id":"u-1","crm":"c-9","uid":"x"}`, rcptTo: "a@example.com",
			s: domain.SourceSettings{UserIDKeys: []string{"crm", "uid"}}, wantUser: "c-9", wantOut: source.OutcomeSend},
		{name: "custom keys replace the defaults", meta: `{"user_id":"u-1"}`, rcptTo: "a@example.com",
			s: domain.SourceSettings{UserIDKeys: []string{"crm"}}, wantAnon: sha("a@example.com"), wantOut: source.OutcomeSend},
		{name: "non-scalar id is ignored", meta: `{"user_id":{"id":1},"userId":true}`, rcptTo: "a@example.com", wantAnon: sha("a@example.com"), wantOut: source.OutcomeSend},
		// Known answers computed outside Go: printf %s 'ana.lopez@example.com' | sha256sum
		{name: "no rcpt_meta: sha256 of the trimmed lower-cased email", rcptTo: "  Ana.Lopez@Example.COM ",
			wantAnon: "53fdd27c13c87b89296422dd99e14d02656dbcacefed01d3b53a56313adf3a98", wantOut: source.OutcomeSend},
		{name: "explicit sha256_email", meta: `{}`, rcptTo: "B@x.io", s: domain.SourceSettings{AnonymousID: "sha256_email"},
			wantAnon: "da9a33894db95b4ef8d14624dff99d9843211cb5bc458ea25fa45ecf5c0f73a8", wantOut: source.OutcomeSend},
		{name: "unknown policy falls back to sha256_email", meta: `{}`, rcptTo: "B@x.io", s: domain.SourceSettings{AnonymousID: "md5"},
			wantAnon: "da9a33894db95b4ef8d14624dff99d9843211cb5bc458ea25fa45ecf5c0f73a8", wantOut: source.OutcomeSend},
		{name: "email policy", meta: `{}`, rcptTo: " Ana@Example.com ", s: domain.SourceSettings{AnonymousID: "email"}, wantAnon: "Ana@Example.com", wantOut: source.OutcomeSend},
		{name: "skip policy", meta: `{}`, rcptTo: "a@example.com", s: domain.SourceSettings{AnonymousID: "skip"}, wantOut: source.OutcomeSkipped},
		{name: "skip policy with a user id sends", meta: `{"user_id":"u-1"}`, s: domain.SourceSettings{AnonymousID: "skip"}, wantUser: "u-1", wantOut: source.OutcomeSend},
		{name: "no id and no rcpt_to", meta: `{}`, wantOut: source.OutcomeSkipped},
		{name: "no id and no rcpt_to, email policy", s: domain.SourceSettings{AnonymousID: "email"}, wantOut: source.OutcomeSkipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := `{"type":"open","event_id":"9","timestamp":"1460989507"`
			if tt.rcptTo != "" {
				inner += `,"rcpt_to":` + strconvQuote(tt.rcptTo)
			}
			if tt.meta != "" {
				inner += `,"rcpt_meta":` + tt.meta
			}
			tr, out, reason := Map("ten_1", event(t, "track_event", inner+"}"), tt.s)
			if out != tt.wantOut {
				t.Fatalf("outcome %v (%s), want %v", out, reason, tt.wantOut)
			}
			if out != source.OutcomeSend {
				if reason == "" {
					t.Errorf("no reason for %v", out)
				}
				return
			}
			if tr.UserID != tt.wantUser || tr.AnonymousID != tt.wantAnon {
				t.Errorf("userId %q anonymousId %q, want %q %q", tr.UserID, tr.AnonymousID, tt.wantUser, tt.wantAnon)
			}
		})
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestMessageID(t *testing.T) {
	a := MessageID("ten_a", "92356927693813856")
	if a != MessageID("ten_a", "92356927693813856") {
		t.Fatal("not deterministic")
	}
	if a == MessageID("ten_b", "92356927693813856") {
		t.Error("two tenants get the same messageId for one event id")
	}
	if a == MessageID("ten_a", "92356927693813857") {
		t.Error("two events get the same messageId")
	}
	// The separator keeps ("ab","c") and ("a","bc") apart... as long as ids have no "/",
	// which tenant ids do not.
	sum := sha256.Sum256([]byte("ten_a/92356927693813856"))
	if want := "sp-" + hex.EncodeToString(sum[:])[:40]; a != want {
		t.Errorf("MessageID = %s, want %s", a, want)
	}
	if len(a) > 100 {
		t.Errorf("len = %d, Segment allows 100", len(a))
	}
	tr, _, _ := Map("ten_a", typed(t, "delivery"), domain.SourceSettings{})
	if tr.MessageID != MessageID("ten_a", "1") {
		t.Errorf("Map messageId = %s, want MessageID(tenant, event_id)", tr.MessageID)
	}
}

func TestMapProperties(t *testing.T) {
	elems := sourcetest.Elems(t, Provider, "batch-mixed.json")
	tests := []struct {
		idx     int
		want    map[string]any // spec keys and a few originals that must survive exactly
		absent  []string       // keys that must not be set
		nFields int            // number of original SparkPost fields, all kept
	}{
		{0, map[string]any{
			"email_id": "m-1", "email_subject": "Hello <Ana> & co", "campaign_id": "spring", "campaign_name": "spring",
			"price": "1.50", "weight": json.Number("1.50"), "msg_size": "1337", "subaccount_id": json.Number("101"),
			"rcpt_tags": []any{"a", "b"}, "rcpt_meta": map[string]any{"user_id": "u-1"}, "event_id": "1001", "timestamp": "1460989507",
		}, []string{"link_url", "link_id", "list_id"}, 15},
		{1, map[string]any{
			"email_id": "m-2", "campaign_id": "spring", "link_url": "https://example.com/x?a=1&b=2", "link_id": "CTA",
			"target_link_url": "https://example.com/x?a=1&b=2", "timestamp": json.Number("1454442600"), "event_id": json.Number("1002"),
			"geo_ip": map[string]any{"country": "US", "region": "CA", "city": "Mountain View", "latitude": json.Number("37.4192"),
				"longitude": json.Number("-122.0574"), "zip": "94043", "postal_code": "94043"},
		}, []string{"email_subject", "list_id"}, 12},
		{5, map[string]any{"list_id": "newsletter", "campaign_id": "newsletter", "campaign_name": "newsletter"},
			[]string{"email_id", "link_url"}, 5},
	}
	for _, tt := range tests {
		ev := ParseEvent(elems[tt.idx])
		tr, out, reason := Map("ten_1", ev, domain.SourceSettings{})
		if out != source.OutcomeSend {
			t.Fatalf("element %d: %v %s", tt.idx, out, reason)
		}
		sourcetest.AsSent(t, &tr)
		for k, v := range tt.want {
			if !reflect.DeepEqual(tr.Properties[k], v) {
				t.Errorf("element %d: properties[%s] = %#v, want %#v", tt.idx, k, tr.Properties[k], v)
			}
		}
		for _, k := range tt.absent {
			if v, ok := tr.Properties[k]; ok {
				t.Errorf("element %d: properties[%s] = %#v, want absent", tt.idx, k, v)
			}
		}
		// Every original field is there, under its own name, re-encoding to the same JSON.
		var orig map[string]json.RawMessage
		if err := json.Unmarshal(ev.Body, &orig); err != nil {
			t.Fatal(err)
		}
		if len(orig) != tt.nFields {
			t.Errorf("element %d: fixture has %d fields, test expects %d", tt.idx, len(orig), tt.nFields)
		}
		for k, raw := range orig {
			got, err := json.Marshal(tr.Properties[k])
			if err != nil {
				t.Fatal(err)
			}
			if k != "campaign_id" && sourcetest.Compact(t, got) != sourcetest.Compact(t, raw) {
				t.Errorf("element %d: properties[%s] encodes as %s, sent as %s", tt.idx, k, got, raw)
			}
		}
		if _, ok := tr.Properties[source.TruncatedKey]; ok {
			t.Errorf("element %d: small event was truncated", tt.idx)
		}
	}
}

func TestMapLinkIDPrefersLinkName(t *testing.T) {
	ev := event(t, "track_event", `{"type":"amp_click","event_id":"1","rcpt_to":"a@x.io","link_name":"Buy","target_link_name":"CTA","target_link_url":"https://x.io"}`)
	tr, _, _ := Map("t", ev, domain.SourceSettings{})
	sourcetest.AsSent(t, &tr)
	if tr.Properties["link_id"] != "Buy" || tr.Properties["link_url"] != "https://x.io" {
		t.Errorf("link_id %v link_url %v", tr.Properties["link_id"], tr.Properties["link_url"])
	}
}

func TestMapNumericCampaignIsSpecString(t *testing.T) {
	ev := event(t, "message_event", `{"type":"delivery","event_id":"1","rcpt_to":"a@x.io","campaign_id":2024,"message_id":77}`)
	tr, _, _ := Map("t", ev, domain.SourceSettings{})
	sourcetest.AsSent(t, &tr)
	if tr.Properties["campaign_id"] != "2024" || tr.Properties["campaign_name"] != "2024" || tr.Properties["email_id"] != "77" {
		t.Errorf("campaign_id %#v campaign_name %#v email_id %#v", tr.Properties["campaign_id"], tr.Properties["campaign_name"], tr.Properties["email_id"])
	}
	if tr.Properties["message_id"] != json.Number("77") {
		t.Errorf("message_id %#v, want the original number", tr.Properties["message_id"])
	}
}

func TestMapContextAndTimestamp(t *testing.T) {
	elems := sourcetest.Elems(t, Provider, "batch-mixed.json")
	integration := map[string]any{"name": "sparkpost", "version": "1.0.0"}
	tests := []struct {
		idx  int
		want map[string]any
	}{
		{0, map[string]any{"integration": integration, "traits": map[string]any{"email": "Ana@Example.com"}}}, // delivery: ip_address absent anyway
		{1, map[string]any{"integration": integration, "traits": map[string]any{"email": "bo@example.com"},
			"ip": "66.102.6.159", "userAgent": "Mozilla/5.0",
			"location": map[string]any{"country": "US", "region": "CA", "city": "Mountain View", "latitude": 37.4192, "longitude": -122.0574}}},
		{2, map[string]any{"integration": integration, "traits": map[string]any{"email": "cy@example.com"},
			"ip": "127.0.0.1", "userAgent": "UA", "location": map[string]any{"country": "US", "latitude": 39.1749, "longitude": -76.8375}}},
	}
	for _, tt := range tests {
		ev := ParseEvent(elems[tt.idx])
		tr, _, _ := Map("t", ev, domain.SourceSettings{})
		if !reflect.DeepEqual(tr.Context, tt.want) {
			t.Errorf("element %d: context\n got %#v\nwant %#v", tt.idx, tr.Context, tt.want)
		}
		if !tr.Timestamp.Equal(ev.Timestamp) || tr.Timestamp.IsZero() {
			t.Errorf("element %d: timestamp %v, want the event's %v", tt.idx, tr.Timestamp, ev.Timestamp)
		}
	}
	// A delivery's ip_address is the receiving MTA's: it must not become the user's ip.
	ev := event(t, "message_event", `{"type":"delivery","event_id":"1","rcpt_to":"a@x.io","ip_address":"74.125.28.27","user_agent":"x","geo_ip":{"country":"US"}}`)
	tr, _, _ := Map("t", ev, domain.SourceSettings{})
	sourcetest.AsSent(t, &tr)
	for _, k := range []string{"ip", "userAgent", "location"} {
		if v, ok := tr.Context[k]; ok {
			t.Errorf("delivery context[%s] = %v, want absent", k, v)
		}
	}
	if tr.Properties["ip_address"] != "74.125.28.27" {
		t.Errorf("ip_address property lost: %v", tr.Properties["ip_address"])
	}
}

// bigEvent is a click whose non-spec fields add up to far more than source.MaxMessageBytes.
func bigEvent(tb testing.TB) source.Event {
	tb.Helper()
	inner := map[string]any{
		"type": "click", "event_id": "big-1", "timestamp": "1460989507", "rcpt_to": "a@example.com",
		"message_id": "m-1", "subject": "s", "campaign_id": "c", "target_link_url": "https://x.io", "target_link_name": "L",
		"html_blob":  strings.Repeat("<b>", 6000), // 18 kB raw, 36 kB escaped as \u003c…
		"text_blob":  strings.Repeat("t", 20000),
		"list_blob":  slices.Repeat([]string{"abcdefghij"}, 1000), // ~13 kB
		"small":      "kept",
		"rcpt_meta":  map[string]any{"user_id": "u-1"},
		"user_agent": "UA", "ip_address": "1.2.3.4",
	}
	b, err := json.Marshal(inner)
	if err != nil {
		tb.Fatal(err)
	}
	return event(tb, "track_event", string(b))
}

func TestMapShrinksOversizedEvents(t *testing.T) {
	tr, out, reason := Map("ten_1", bigEvent(t), domain.SourceSettings{})
	if out != source.OutcomeSend {
		t.Fatalf("outcome %v (%s), want send", out, reason)
	}
	// Measure with analytics-go itself: that is the encoding its 32,000-byte check applies to.
	msg := analytics.Track{
		Type: "track", MessageId: tr.MessageID, UserId: tr.UserID, AnonymousId: tr.AnonymousID,
		Event: tr.Event, Timestamp: tr.Timestamp, Context: &analytics.Context{Extra: tr.Context}, Properties: tr.Properties,
	}
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > source.MaxMessageBytes {
		t.Errorf("encoded message is %d bytes, over %d", len(b), source.MaxMessageBytes)
	}
	if size, _ := source.EncodedSize(&tr); size != len(b) {
		t.Errorf("our size %d, analytics-go's %d", size, len(b))
	}
	// The two largest go (html_blob escapes to ~36 kB, text_blob 20 kB); list_blob fits.
	if got, want := tr.Properties[source.TruncatedKey], []string{"html_blob", "text_blob"}; !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", source.TruncatedKey, got, want)
	}
	for _, k := range []string{"email_id", "email_subject", "campaign_id", "campaign_name", "link_url", "link_id", "list_blob", "small", "rcpt_meta"} {
		if _, ok := tr.Properties[k]; !ok {
			t.Errorf("properties[%s] dropped; only the largest non-spec properties may go", k)
		}
	}
}

func TestMapShrinksToTheLimitExactly(t *testing.T) {
	// Fields just over the limit: one must go, and the smaller ones stay.
	inner := map[string]any{"type": "delivery", "event_id": "1", "rcpt_to": "a@x.io", "timestamp": "1"}
	for i := range 8 {
		inner[fmt.Sprintf("f%d", i)] = strings.Repeat("x", 4000+i)
	}
	b, _ := json.Marshal(inner)
	tr, out, reason := Map("t", event(t, "message_event", string(b)), domain.SourceSettings{})
	if out != source.OutcomeSend {
		t.Fatalf("%v %s", out, reason)
	}
	if size, _ := source.EncodedSize(&tr); size > source.MaxMessageBytes {
		t.Errorf("size %d", size)
	}
	if got := tr.Properties[source.TruncatedKey]; !reflect.DeepEqual(got, []string{"f7"}) {
		t.Errorf("dropped %v, want [f7] (the largest)", got)
	}
}

func TestMapRefusesWhatCannotFit(t *testing.T) {
	// rcpt_to is context (traits.email): no property drop can make this fit.
	huge := strings.Repeat("a", 40000) + "@x.io"
	ev := event(t, "message_event", `{"type":"delivery","event_id":"1","rcpt_meta":{"user_id":"u"},"rcpt_to":"`+huge+`"}`)
	_, out, reason := Map("t", ev, domain.SourceSettings{})
	if out != source.OutcomeNotSent || !strings.Contains(reason, "limit") {
		t.Errorf("outcome %v %q, want not_sent naming the limit", out, reason)
	}
}

func TestMapZeroTimestampMeasuresTheClientClock(t *testing.T) {
	ev := typed(t, "delivery")
	ev.Timestamp = time.Time{}
	tr, out, _ := Map("t", ev, domain.SourceSettings{})
	if out != source.OutcomeSend || !tr.Timestamp.IsZero() {
		t.Fatalf("%v %v", out, tr.Timestamp)
	}
	withNow := tr
	withNow.Timestamp = time.Now()
	a, _ := source.EncodedSize(&tr)
	b, _ := source.EncodedSize(&withNow)
	if a < b {
		t.Errorf("size with zero timestamp %d < size with now %d: not an upper bound", a, b)
	}
}

// TestSizeBoundIsAnUpperBound guards the shortcut that skips measuring small events: it must
// hold for the worst escaping there is, or an oversized message would reach analytics-go.
func TestSizeBoundIsAnUpperBound(t *testing.T) {
	worst := []string{"<", "\xff", "\u2028", "&", `"`, "é", "\x01"}
	for _, w := range worst {
		for _, n := range []int{10, 200, 600} {
			v := strings.Repeat(w, n)
			inner := map[string]any{
				"type": "click", "event_id": v, "timestamp": "1460989507", "rcpt_to": "a" + v, "message_id": v,
				"subject": v, "campaign_id": v, "target_link_url": v, "link_name": v, "user_agent": v, "ip_address": v,
				"rcpt_meta": map[string]any{"user_id": "u" + v}, "geo_ip": map[string]any{"city": v, "latitude": 1.0 / 3, "longitude": "-122.0574"},
			}
			b, _ := json.Marshal(inner)
			b = []byte(strings.ReplaceAll(string(b), `\ufffd`, "\xff")) // put the invalid bytes back raw
			ev := ParseEvent(json.RawMessage(`{"msys":{"track_event":` + string(b) + `}}`))
			if ev.ParseError != "" {
				t.Fatalf("%q×%d: %s", w, n, ev.ParseError)
			}
			tr, out, reason := Map("t", ev, domain.SourceSettings{AnonymousID: domain.AnonymousEmail})
			if out != source.OutcomeSend {
				t.Fatalf("%q×%d: %v %s", w, n, out, reason)
			}
			size, err := source.EncodedSize(&tr)
			if err != nil {
				t.Fatal(err)
			}
			if bound := source.SizeBound(&tr, len(ev.Body)); size > bound || size > source.MaxMessageBytes {
				t.Errorf("%q×%d: size %d, bound %d, limit %d", w, n, size, bound, source.MaxMessageBytes)
			}
		}
	}
}
