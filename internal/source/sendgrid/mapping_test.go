package sendgrid

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sourcetest"
)

// event parses one element, failing on a parse error.
func event(tb testing.TB, elem string) source.Event {
	tb.Helper()
	ev := ParseEvent(json.RawMessage(elem))
	if ev.ParseError != "" {
		tb.Fatalf("ParseEvent(%s): %s", elem, ev.ParseError)
	}
	return ev
}

// typed returns a minimal sendable event of the given SendGrid type.
func typed(tb testing.TB, typ string) source.Event {
	tb.Helper()
	return event(tb, fmt.Sprintf(`{"event":%q,"sg_event_id":"e-1","timestamp":1700000000,"email":"a@example.com","user_id":"u1"}`, typ))
}

// fixture returns the parsed events of testdata/events.json.
func fixture(tb testing.TB) []source.Event {
	tb.Helper()
	var evs []source.Event
	for _, e := range sourcetest.Elems(tb, Provider, "events.json") {
		ev := ParseEvent(e)
		if ev.ParseError != "" {
			tb.Fatalf("fixture element %s: %s", e, ev.ParseError)
		}
		evs = append(evs, ev)
	}
	return evs
}

// mustSend maps ev with settings s and fails unless the outcome is OutcomeSend.
func mustSend(tb testing.TB, tenantID string, ev source.Event, s domain.SourceSettings) delivery.SegmentMessage {
	tb.Helper()
	tr, out, reason := Map(tenantID, ev, s)
	if out != source.OutcomeSend {
		tb.Fatalf("Map(%s) = %v (%s), want send", ev.Body, out, reason)
	}
	sourcetest.AsSent(tb, &tr)
	return tr
}

func sha256Hex(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func TestSegmentEventName(t *testing.T) {
	tests := []struct {
		typ  string
		want string // "" = stored, not sent
	}{
		{"processed", "Email Sent"},
		{"deferred", "Email Deferred"},
		{"delivered", "Email Delivered"},
		{"bounce", "Email Bounced"},
		{"dropped", "Email Dropped"},
		{"open", "Email Opened"},
		{"click", "Email Link Clicked"},
		{"spamreport", "Email Marked as Spam"},
		{"unsubscribe", "Unsubscribed"},
		{"group_unsubscribe", "Unsubscribed"},
		{"group_resubscribe", "Resubscribed"},
		{"account_status_change", ""},
		{"teleport", ""},
		{"Processed", ""}, // types are exact
		{"blocked", ""},   // a bounce's "type", never an event
		{"", ""},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.typ] = true
		name, ok := SegmentEventName(tt.typ)
		if name != tt.want || ok != (tt.want != "") {
			t.Errorf("SegmentEventName(%q) = %q, %v; want %q", tt.typ, name, ok, tt.want)
		}
		if tt.typ == "" {
			continue
		}
		// Map agrees: a mappable type is sent under that name, any other is stored only.
		tr, out, reason := Map("ten_1", typed(t, tt.typ), domain.SourceSettings{})
		if tt.want == "" && (out != source.OutcomeNotSent || reason == "") {
			t.Errorf("Map(%q) = %v %q, want not_sent with a reason", tt.typ, out, reason)
		}
		if tt.want != "" && (out != source.OutcomeSend || tr.Event != tt.want || tr.Type != "track") {
			t.Errorf("Map(%q) = %v %q %q, want send track %q", tt.typ, out, tr.Type, tr.Event, tt.want)
		}
	}
	for _, typ := range Types {
		if !covered[typ] {
			t.Errorf("type %q of Types is not in the table", typ)
		}
	}
}

func TestMapUserID(t *testing.T) {
	tests := []struct {
		name     string
		args     string // members added to the event, JSON without braces
		keys     []string
		wantUser string
	}{
		{name: "user_id", args: `"user_id":"u-42"`, wantUser: "u-42"},
		{name: "userId", args: `"userId":"u-77"`, wantUser: "u-77"},
		{name: "user_id before userId", args: `"userId":"u-77","user_id":"u-42"`, wantUser: "u-42"},
		{name: "blank user_id falls to userId", args: `"user_id":" ","userId":"u-77"`, wantUser: "u-77"},
		{name: "numeric id keeps its text", args: `"user_id":12345678901234567890`, wantUser: "12345678901234567890"},
		{name: "id is trimmed", args: `"user_id":"  u-42 "`, wantUser: "u-42"},
		{name: "custom keys in order", args: `"user_id":"u-42","crm_id":"c-9","uid":"x"`, keys: []string{"crm_id", "uid"}, wantUser: "c-9"},
		{name: "custom keys replace the defaults", args: `"user_id":"u-42"`, keys: []string{"crm_id"}},
		{name: "nested unique_args", args: `"unique_args":{"user_id":"n-1"}`, wantUser: "n-1"},
		{name: "nested unique_args, userId", args: `"unique_args":{"userId":"n-2"}`, wantUser: "n-2"},
		{name: "top level wins over nested", args: `"user_id":"u-42","unique_args":{"user_id":"n-1"}`, wantUser: "u-42"},
		{name: "blank top level falls to nested", args: `"user_id":"","unique_args":{"user_id":"n-1"}`, wantUser: "n-1"},
		{name: "nested with custom keys", args: `"unique_args":{"crm_id":"c-1","user_id":"n-1"}`, keys: []string{"crm_id"}, wantUser: "c-1"},
		{name: "non-scalar id is ignored", args: `"user_id":{"id":1},"userId":true`},
		{name: "unique_args not an object", args: `"unique_args":"user_id=n-1"`},
		{name: "no unique args"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			elem := `{"event":"open","sg_event_id":"e-1","timestamp":1700000000,"email":"a@example.com"`
			if tt.args != "" {
				elem += "," + tt.args
			}
			tr, out, reason := Map("ten_1", event(t, elem+"}"), domain.SourceSettings{UserIDKeys: tt.keys})
			if out != source.OutcomeSend {
				t.Fatalf("outcome %v (%s), want send", out, reason)
			}
			wantAnon := ""
			if tt.wantUser == "" {
				wantAnon = sha256Hex("a@example.com")
			}
			if tr.UserID != tt.wantUser || tr.AnonymousID != wantAnon {
				t.Errorf("userId %q anonymousId %q, want %q %q", tr.UserID, tr.AnonymousID, tt.wantUser, wantAnon)
			}
		})
	}
}

func TestMapAnonymousID(t *testing.T) {
	tests := []struct {
		name     string
		email    string // "" = absent
		extra    string // more members, JSON without braces
		policy   string
		wantAnon string
		wantUser string
		wantOut  source.Outcome
	}{
		// Known answer computed outside Go: printf %s 'ana.lopez@example.com' | sha256sum
		{name: "default: sha256 of the trimmed lower-cased email", email: "  Ana.Lopez@Example.COM ",
			wantAnon: "53fdd27c13c87b89296422dd99e14d02656dbcacefed01d3b53a56313adf3a98", wantOut: source.OutcomeSend},
		{name: "explicit sha256_email", email: "Ana.Lopez@example.com", policy: domain.AnonymousSHA256Email,
			wantAnon: "53fdd27c13c87b89296422dd99e14d02656dbcacefed01d3b53a56313adf3a98", wantOut: source.OutcomeSend},
		{name: "email policy: the trimmed email as sent", email: " Ana.Lopez@Example.COM ", policy: domain.AnonymousEmail,
			wantAnon: "Ana.Lopez@Example.COM", wantOut: source.OutcomeSend},
		{name: "skip policy", email: "a@example.com", policy: domain.AnonymousSkip, wantOut: source.OutcomeSkipped},
		{name: "skip policy with a user id sends", email: "a@example.com", extra: `"user_id":"u-42"`, policy: domain.AnonymousSkip,
			wantUser: "u-42", wantOut: source.OutcomeSend},
		{name: "a user id needs no email", extra: `"user_id":"u-42"`, wantUser: "u-42", wantOut: source.OutcomeSend},
		{name: "no id and no email", wantOut: source.OutcomeSkipped},
		{name: "no id and a blank email", email: "   ", policy: domain.AnonymousEmail, wantOut: source.OutcomeSkipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			elem := `{"event":"delivered","sg_event_id":"e-1","timestamp":1700000000`
			if tt.email != "" {
				b, _ := json.Marshal(tt.email)
				elem += `,"email":` + string(b)
			}
			if tt.extra != "" {
				elem += "," + tt.extra
			}
			tr, out, reason := Map("ten_1", event(t, elem+"}"), domain.SourceSettings{AnonymousID: tt.policy})
			if out != tt.wantOut {
				t.Fatalf("outcome %v (%s), want %v", out, reason, tt.wantOut)
			}
			if out != source.OutcomeSend {
				if reason == "" {
					t.Errorf("no reason for %v", out)
				}
				if !reflect.DeepEqual(tr, delivery.SegmentMessage{}) {
					t.Errorf("a skipped event came with a track call: %+v", tr)
				}
				return
			}
			if tr.UserID != tt.wantUser || tr.AnonymousID != tt.wantAnon {
				t.Errorf("userId %q anonymousId %q, want %q %q", tr.UserID, tr.AnonymousID, tt.wantUser, tt.wantAnon)
			}
		})
	}
}

func TestMessageID(t *testing.T) {
	const id = "ZGVsaXZlcmVkLTAtMjQ5NTY2NjEtTFJ6WGw2NkFUdEtIWWJEUTRaSmtZQS0w"
	a := MessageID("ten_a", id)
	if want := "sg-" + sha256Hex("ten_a/" + id)[:40]; a != want {
		t.Errorf("MessageID = %s, want %s", a, want)
	}
	if a != MessageID("ten_a", id) {
		t.Error("not deterministic")
	}
	if a == MessageID("ten_b", id) {
		t.Error("two tenants get the same messageId for one sg_event_id")
	}
	if a == MessageID("ten_a", id+"x") {
		t.Error("two events get the same messageId")
	}
	if len(a) != 43 {
		t.Errorf("len = %d, want 43 (sg- and 40 hex)", len(a))
	}
}

func TestMapMessageID(t *testing.T) {
	for _, ev := range fixture(t) {
		tr := mustSend(t, "ten_a", ev, domain.SourceSettings{})
		if want := "sg-" + sha256Hex("ten_a/" + ev.EventID)[:40]; tr.MessageID != want {
			t.Errorf("%s: messageId %s, want %s", ev.Type, tr.MessageID, want)
		}
		if other := mustSend(t, "ten_b", ev, domain.SourceSettings{}); other.MessageID == tr.MessageID {
			t.Errorf("%s: tenants ten_a and ten_b share messageId %s", ev.Type, tr.MessageID)
		}
		if !tr.Timestamp.Equal(ev.Timestamp) || tr.Timestamp.IsZero() {
			t.Errorf("%s: timestamp %v, want the event's %v", ev.Type, tr.Timestamp, ev.Timestamp)
		}
	}
	// An event without sg_event_id is keyed by its hash id, so a re-post dedupes in Segment too.
	ev := event(t, `{"event":"open","timestamp":1700000000,"email":"a@example.com"}`)
	if tr := mustSend(t, "ten_a", ev, domain.SourceSettings{}); tr.MessageID != MessageID("ten_a", ev.EventID) {
		t.Errorf("messageId %s, want MessageID(tenant, hash id %s)", tr.MessageID, ev.EventID)
	}
}

func TestMapContext(t *testing.T) {
	integration := map[string]any{"name": "sendgrid", "version": "1.0.0"}
	// The reader's ip and user agent, for the types where they are the reader's.
	reader := map[string][2]string{
		"open":              {"203.0.113.7", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"},
		"click":             {"198.51.100.23", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"},
		"group_unsubscribe": {"192.0.2.44", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36"},
		"group_resubscribe": {"192.0.2.44", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36"},
	}
	for _, ev := range fixture(t) {
		tr := mustSend(t, "ten_1", ev, domain.SourceSettings{})
		want := map[string]any{"integration": integration, "traits": map[string]any{"email": ev.Recipient}}
		if r, ok := reader[ev.Type]; ok {
			want["ip"], want["userAgent"] = r[0], r[1]
		}
		if !reflect.DeepEqual(tr.Context, want) {
			t.Errorf("%s: context\n got %#v\nwant %#v", ev.Type, tr.Context, want)
		}
	}
}

func TestMapContextKeepsSendGridsIPOutOfDeliveryEvents(t *testing.T) {
	// deferred and delivered carry SendGrid's sending IP: it must not locate the user.
	for _, typ := range []string{"processed", "deferred", "delivered", "bounce", "dropped", "spamreport", "unsubscribe"} {
		ev := event(t, `{"event":"`+typ+`","sg_event_id":"e-1","timestamp":1700000000,"email":"a@example.com","ip":"168.1.1.1","useragent":"UA"}`)
		tr := mustSend(t, "ten_1", ev, domain.SourceSettings{})
		for _, k := range []string{"ip", "userAgent"} {
			if v, ok := tr.Context[k]; ok {
				t.Errorf("%s: context[%s] = %v, want absent", typ, k, v)
			}
		}
		if tr.Properties["ip"] != "168.1.1.1" {
			t.Errorf("%s: ip property lost: %v", typ, tr.Properties["ip"])
		}
	}
	// A blank engagement ip is no ip; the email is a trimmed trait.
	ev := event(t, `{"event":"open","sg_event_id":"e-1","timestamp":1700000000,"email":" a@example.com ","ip":"  ","useragent":""}`)
	tr := mustSend(t, "ten_1", ev, domain.SourceSettings{})
	want := map[string]any{"integration": map[string]any{"name": "sendgrid", "version": "1.0.0"}, "traits": map[string]any{"email": "a@example.com"}}
	if !reflect.DeepEqual(tr.Context, want) {
		t.Errorf("context %#v, want %#v", tr.Context, want)
	}
}

func TestMapProperties(t *testing.T) {
	evs := fixture(t)
	spec := []string{"email_id", "campaign_id", "campaign_name", "link_url", "list_id"}
	tests := []struct {
		idx  int
		want map[string]string // the spec keys this event has; the others must be absent
	}{
		{0, map[string]string{"campaign_id": "welcome", "campaign_name": "welcome"}},
		{1, map[string]string{"campaign_id": "welcome", "campaign_name": "welcome"}},
		{3, map[string]string{"campaign_id": "newsletter", "campaign_name": "newsletter"}},
		{4, map[string]string{"campaign_id": "newsletter", "campaign_name": "newsletter",
			"link_url": "https://example.com/deals?utm_source=sendgrid&utm_campaign=newsletter"}},
		{5, map[string]string{"campaign_id": "welcome", "campaign_name": "welcome"}},
		{6, map[string]string{"campaign_id": "welcome", "campaign_name": "welcome"}},
		{7, map[string]string{"campaign_id": "welcome", "campaign_name": "welcome"}},
		{8, map[string]string{"campaign_id": "newsletter", "campaign_name": "newsletter"}},
		{9, map[string]string{"campaign_id": "newsletter", "campaign_name": "newsletter"}},
		{10, map[string]string{"campaign_id": "newsletter", "campaign_name": "newsletter", "list_id": "10"}},
		{11, map[string]string{"campaign_id": "newsletter", "campaign_name": "newsletter", "list_id": "10"}},
	}
	for _, tt := range tests {
		ev := evs[tt.idx]
		tr := mustSend(t, "ten_1", ev, domain.SourceSettings{})
		tt.want["email_id"] = ev.MessageID
		for _, k := range spec {
			got, ok := tr.Properties[k]
			if want, wantOK := tt.want[k]; ok != wantOK || wantOK && got != want {
				t.Errorf("%d %s: properties[%s] = %#v (set %v), want %q (set %v)", tt.idx, ev.Type, k, got, ok, want, wantOK)
			}
		}
		checkOriginalsKept(t, ev, tr.Properties)
	}
}

func TestMapMarketingCampaignName(t *testing.T) {
	ev := fixture(t)[2] // delivered, from a Marketing Campaigns single send
	tr := mustSend(t, "ten_1", ev, domain.SourceSettings{})
	if got := tr.Properties["campaign_name"]; got != "Spring Sale 2024" {
		t.Errorf("campaign_name = %#v, want marketing_campaign_name", got)
	}
	if got := tr.Properties["campaign_id"]; got != "12345" {
		t.Errorf("campaign_id = %#v, want marketing_campaign_id as text", got)
	}
	if got := tr.Properties["marketing_campaign_id"]; got != json.Number("12345") {
		t.Errorf("marketing_campaign_id = %#v, want the number as sent", got)
	}
	checkOriginalsKept(t, ev, tr.Properties)

	// A category names the campaign when there is no marketing_campaign_name, or a blank one.
	ev = event(t, `{"event":"open","sg_event_id":"e-1","email":"a@x.io","category":["spring","b"],"marketing_campaign_name":" "}`)
	tr = mustSend(t, "ten_1", ev, domain.SourceSettings{})
	if tr.Properties["campaign_id"] != "spring" || tr.Properties["campaign_name"] != "spring" {
		t.Errorf("campaign_id %#v campaign_name %#v, want the first category", tr.Properties["campaign_id"], tr.Properties["campaign_name"])
	}
}

func TestMapLinkIDFromURLOffset(t *testing.T) {
	ev := event(t, `{"event":"click","sg_event_id":"e-1","email":"a@x.io","url":"https://x.io","url_offset":{"index":2,"type":"html"}}`)
	tr := mustSend(t, "ten_1", ev, domain.SourceSettings{})
	if tr.Properties["link_id"] != "2" || tr.Properties["link_url"] != "https://x.io" {
		t.Errorf("link_id %#v link_url %#v", tr.Properties["link_id"], tr.Properties["link_url"])
	}
	// Only clicks have links.
	ev = event(t, `{"event":"open","sg_event_id":"e-1","email":"a@x.io","url":"https://x.io","url_offset":{"index":2,"type":"html"}}`)
	tr = mustSend(t, "ten_1", ev, domain.SourceSettings{})
	for _, k := range []string{"link_id", "link_url"} {
		if v, ok := tr.Properties[k]; ok {
			t.Errorf("open: properties[%s] = %#v, want absent", k, v)
		}
	}
}

// checkOriginalsKept fails unless every member of ev's body is in props under its own name,
// re-encoding to the same JSON (numbers to the digit).
func checkOriginalsKept(tb testing.TB, ev source.Event, props map[string]any) {
	tb.Helper()
	var orig map[string]json.RawMessage
	if err := json.Unmarshal(ev.Body, &orig); err != nil {
		tb.Fatal(err)
	}
	for k, raw := range orig {
		got, err := json.Marshal(props[k])
		if err != nil {
			tb.Fatal(err)
		}
		if sourcetest.Compact(tb, got) != sourcetest.Compact(tb, raw) {
			tb.Errorf("%s: properties[%s] encodes as %s, sent as %s", ev.Type, k, got, raw)
		}
	}
	if _, ok := props[source.TruncatedKey]; ok {
		tb.Errorf("%s: a small event was truncated", ev.Type)
	}
}

func TestMapEventsAllowList(t *testing.T) {
	tests := []struct {
		typ    string
		events []string
		wantOK bool
	}{
		{"open", []string{"open", "click"}, true},
		{"click", []string{"open", "click"}, true},
		{"delivered", []string{"open", "click"}, false},
		{"group_unsubscribe", []string{"unsubscribe"}, false},
		{"unsubscribe", []string{"unsubscribe"}, true},
		// The list narrows; it never forwards what the mapping does not.
		{"account_status_change", []string{"account_status_change"}, false},
		{"processed", nil, true},
		{"processed", []string{}, true},
	}
	for _, tt := range tests {
		tr, out, reason := Map("ten_1", typed(t, tt.typ), domain.SourceSettings{Events: tt.events})
		if tt.wantOK && out != source.OutcomeSend {
			t.Errorf("%s with events %v: %v (%s), want send", tt.typ, tt.events, out, reason)
		}
		if !tt.wantOK && (out != source.OutcomeNotSent || reason == "" || !reflect.DeepEqual(tr, delivery.SegmentMessage{})) {
			t.Errorf("%s with events %v: %v %q %+v, want not_sent with a reason and no track", tt.typ, tt.events, out, reason, tr)
		}
	}
}

func TestMapInvalidEvent(t *testing.T) {
	for _, e := range sourcetest.Elems(t, Provider, "odd-elements.json") {
		ev := ParseEvent(e)
		if ev.ParseError == "" {
			continue
		}
		tr, out, reason := Map("ten_1", ev, domain.SourceSettings{})
		if out != source.OutcomeInvalid || !strings.Contains(reason, ev.ParseError) || !reflect.DeepEqual(tr, delivery.SegmentMessage{}) {
			t.Errorf("%s: %v %q %+v, want invalid naming %q", e, out, reason, tr, ev.ParseError)
		}
	}
}

func TestMapShrinksOversizedEvents(t *testing.T) {
	big := map[string]any{
		"event": "click", "sg_event_id": "big-1", "timestamp": 1700000000, "email": "a@example.com",
		"sg_message_id": "m-1", "category": "newsletter", "url": "https://x.io/a", "ip": "198.51.100.23", "useragent": "UA",
		"user_id": "u-42", "small": "kept",
		"blob": strings.Repeat("x", 40*1024),
	}
	b, err := json.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	tr := mustSend(t, "ten_1", event(t, string(b)), domain.SourceSettings{})
	size, err := source.EncodedSize(&tr)
	if err != nil || size > source.MaxMessageBytes {
		t.Fatalf("encoded size %d (err %v), limit %d", size, err, source.MaxMessageBytes)
	}
	if got, want := tr.Properties[source.TruncatedKey], []any{"blob"}; !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %v", source.TruncatedKey, got, want)
	}
	for _, k := range []string{"email_id", "campaign_id", "campaign_name", "link_url", "small", "user_id", "sg_event_id"} {
		if _, ok := tr.Properties[k]; !ok {
			t.Errorf("properties[%s] dropped; only the largest non-spec properties may go", k)
		}
	}
	if tr.UserID != "u-42" || tr.Context["ip"] != "198.51.100.23" {
		t.Errorf("userId %q ip %v: the identity and context must survive shrinking", tr.UserID, tr.Context["ip"])
	}
}

func TestMapRefusesWhatCannotFit(t *testing.T) {
	// The email is context (traits.email): no property drop can make this fit.
	huge := strings.Repeat("a", 40000) + "@x.io"
	ev := event(t, `{"event":"delivered","sg_event_id":"e-1","user_id":"u","email":"`+huge+`"}`)
	tr, out, reason := Map("ten_1", ev, domain.SourceSettings{})
	if out != source.OutcomeNotSent || !strings.Contains(reason, "limit") || !reflect.DeepEqual(tr, delivery.SegmentMessage{}) {
		t.Errorf("outcome %v %q, want not_sent naming the limit", out, reason)
	}
}

func TestProviderMapIsMap(t *testing.T) {
	if Provider.Name() != domain.ProviderSendGrid || !slices.Equal(Provider.Types(), Types) {
		t.Fatalf("Provider %q types %v", Provider.Name(), Provider.Types())
	}
	for _, ev := range fixture(t) {
		a, outA, _ := Map("ten_1", ev, domain.SourceSettings{})
		b, outB, _ := Provider.Map("ten_1", ev, domain.SourceSettings{})
		if outA != outB || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: Provider.Map differs from Map", ev.Type)
		}
	}
}
