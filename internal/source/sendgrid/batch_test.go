package sendgrid

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sourcetest"
)

func TestSplitBatch(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		n       int    // elements returned
		ping    bool   // answered as a ping
		wantErr string // substring of the error message; "" = no error
	}{
		{name: "empty array", body: `[]`, ping: true},
		{name: "empty array with whitespace", body: " \r\n[ \t]\n", ping: true},
		{name: "one event", body: `[{"event":"processed","sg_event_id":"a"}]`, n: 1},
		{name: "three events", body: `[{"event":"open"},{"event":"click"},{"event":"bounce"}]`, n: 3},
		{name: "odd elements are ParseEvent's business", body: `[1, "x", null, [], {}]`, n: 5},
		{name: "empty body", body: ``, wantErr: "body is empty"},
		{name: "whitespace body", body: " \n\t ", wantErr: "body is empty"},
		{name: "empty object", body: `{}`, wantErr: "body is a JSON object"},
		{name: "one event not in an array", body: `{"event":"processed","sg_event_id":"a"}`, wantErr: "body is a JSON object"},
		{name: "string", body: `"[]"`, wantErr: "body is a JSON string"},
		{name: "number", body: `42`, wantErr: "body is a JSON number"},
		{name: "null", body: `null`, wantErr: "body is a JSON null"},
		{name: "truncated array", body: `[{"event":"open"}`, wantErr: "body is not valid JSON"},
		{name: "garbage", body: `hello`, wantErr: "body is not valid JSON"},
		{name: "trailing garbage", body: `[] x`, wantErr: "body is not valid JSON"},
		{name: "trailing comma", body: `[{"event":"open"},]`, wantErr: "body is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			elems, ping, err := SplitBatch([]byte(tt.body))
			if tt.wantErr != "" {
				var de *domain.Error
				if !errors.As(err, &de) {
					t.Fatalf("err = %v (%T), want a *domain.Error", err, err)
				}
				if de.Code != domain.EINVALID {
					t.Errorf("code = %q, want %q (the hook answers 400)", de.Code, domain.EINVALID)
				}
				if !strings.Contains(de.Message, tt.wantErr) {
					t.Errorf("message = %q, want it to contain %q", de.Message, tt.wantErr)
				}
				if elems != nil || ping {
					t.Errorf("error came with %d elements, ping %v", len(elems), ping)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if ping != tt.ping || len(elems) != tt.n {
				t.Fatalf("got %d elements, ping %v; want %d, ping %v", len(elems), ping, tt.n, tt.ping)
			}
		})
	}
}

func TestSplitBatchReturnsSubSlicesInOrder(t *testing.T) {
	first := `{"event":"open",  "x": 1.50}`
	second := `{ "event" : "click" }`
	body := []byte("[ " + first + " ,\n" + second + ", 7 ]")
	elems, ping, err := SplitBatch(body)
	if err != nil || ping {
		t.Fatalf("ping %v, err %v", ping, err)
	}
	if want := []string{first, second, "7"}; len(elems) != len(want) ||
		string(elems[0]) != want[0] || string(elems[1]) != want[1] || string(elems[2]) != want[2] {
		t.Fatalf("elements = %q, want %q: the bytes as sent, in order", elems, want)
	}
	// Sub-slices, not copies: a byte changed in the body shows in the element.
	body[strings.Index(string(body), "open")] = 'O'
	if !strings.HasPrefix(string(elems[0]), `{"event":"Open"`) {
		t.Errorf("element %q is a copy of the body, want a sub-slice", elems[0])
	}
}

func TestSplitBatchFixture(t *testing.T) {
	elems := sourcetest.Elems(t, Provider, "events.json")
	want := []string{"processed", "deferred", "delivered", "open", "click", "bounce", "bounce",
		"dropped", "spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe"}
	if len(elems) != len(want) {
		t.Fatalf("%d elements, want %d", len(elems), len(want))
	}
	for i, e := range elems {
		var v struct{ Event string }
		if err := json.Unmarshal(e, &v); err != nil || v.Event != want[i] {
			t.Errorf("element %d: event %q (err %v), want %q", i, v.Event, err, want[i])
		}
	}
}

func TestParseEventFields(t *testing.T) {
	elems := sourcetest.Elems(t, Provider, "events.json")
	const (
		msgA = "LRzXl66ATtKHYbDQ4ZJkYA.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
		msgB = "6QHkbXmTRtuLwAQ2r9PsFA.filterdrecv-5645d9c87f-8fxnb-1-6553A1E0-22.0"
		msgG = "Ct6Vr3EeU1Ag8Qw9X5zZ3b.filterdrecv-5645d9c87f-8fxnb-1-6553A1E0-25.0"
	)
	at := func(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
	want := []source.Event{
		{Wrapper: "delivery_event", Type: "processed", EventID: "cHJvY2Vzc2VkLTI0OTU2NjYxLUxSelhsNjZBVHRLSFliRFE0WkprWUEtMA", Timestamp: at(1700000000),
			Recipient: "Ana.Lopez@Example.com", MessageID: msgA, CampaignID: "welcome", TemplateID: "d-1b2c3d4e5f60718293a4b5c6d7e8f901"},
		{Wrapper: "delivery_event", Type: "deferred", EventID: "ZGVmZXJyZWQtMC0yNDk1NjY2MS1MUnpYbDY2QVR0S0hZYkRRNFpKa1lBLTA", Timestamp: at(1700000060),
			Recipient: "ana.lopez@example.com", MessageID: msgA, CampaignID: "welcome"},
		{Wrapper: "delivery_event", Type: "delivered", EventID: "ZGVsaXZlcmVkLTAtMjQ5NTY2NjEtTFJ6WGw2NkFUdEtIWWJEUTRaSmtZQS0w", Timestamp: at(1700000120),
			Recipient: "ana.lopez@example.com", MessageID: msgA},
		{Wrapper: "engagement_event", Type: "open", EventID: "b3Blbi0xOTI4Mzc0NjUtNlFIa2JYbVRSdHVMd0FRMnI5UHNGQS0w", Timestamp: at(1700000300),
			Recipient: "bo.chen@example.com", MessageID: msgB, CampaignID: "newsletter"},
		{Wrapper: "engagement_event", Type: "click", EventID: "Y2xpY2stMTkyODM3NDY1LTZRSGtiWG1UUnR1THdBUTJyOVBzRkEtMA", Timestamp: at(1700000360),
			Recipient: "bo.chen@example.com", MessageID: msgB, CampaignID: "newsletter"},
		{Wrapper: "delivery_event", Type: "bounce", EventID: "Ym91bmNlLTAtNTU1MTIzNDQtWGsyR20xWmtRaFdiMUxxM1I4c1Qwdy0w", Timestamp: at(1700000400),
			Recipient: "nobody@example.org", MessageID: "Xk2Gm1ZkQhWb1Lq3R8sT0w.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-10.0", CampaignID: "welcome"},
		{Wrapper: "delivery_event", Type: "bounce", EventID: "YmxvY2tlZC0wLTU1NTEyMzQ1LVlwOFJuMlphUTdXYzRNczVUMXVWOXgtMA", Timestamp: at(1700000460),
			Recipient: "cy.dubois@example.net", MessageID: "Yp8Rn2ZaQ7Wc4Ms5T1uV9x.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-11.0", CampaignID: "welcome"},
		{Wrapper: "delivery_event", Type: "dropped", EventID: "ZHJvcHBlZC0wLTU1NTEyMzQ2LVpxOVNvM0FiUjhYZDVOdDZVMnZXMHktMA", Timestamp: at(1700000520),
			Recipient: "di.evans@example.com", MessageID: "Zq9So3AbR8Xd5Nt6U2vW0y.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-12.0", CampaignID: "welcome"},
		{Wrapper: "engagement_event", Type: "spamreport", EventID: "c3BhbXJlcG9ydC0xOTI4Mzc0NjYtQXI0VHAxQ2NTOVllNk91N1YzeFgxei0w", Timestamp: at(1700000600),
			Recipient: "ed.fischer@example.com", MessageID: "Ar4Tp1CcS9Ye6Ou7V3xX1z.filterdrecv-5645d9c87f-8fxnb-1-6553A1E0-23.0", CampaignID: "newsletter"},
		{Wrapper: "engagement_event", Type: "unsubscribe", EventID: "dW5zdWJzY3JpYmUtMTkyODM3NDY3LUJzNVVxMkRkVDBaZjdQdjhXNHlZMmEtMA", Timestamp: at(1700000660),
			Recipient: "fa.garcia@example.com", MessageID: "Bs5Uq2DdT0Zf7Pv8W4yY2a.filterdrecv-5645d9c87f-8fxnb-1-6553A1E0-24.0", CampaignID: "newsletter"},
		{Wrapper: "engagement_event", Type: "group_unsubscribe", EventID: "Z3JvdXBfdW5zdWJzY3JpYmUtMTkyODM3NDY4LUN0NlZyM0VlVTFBZzhRdzlYNXpaM2ItMA", Timestamp: at(1700000720),
			Recipient: "gu.haas@example.com", MessageID: msgG, CampaignID: "newsletter"},
		{Wrapper: "engagement_event", Type: "group_resubscribe", EventID: "Z3JvdXBfcmVzdWJzY3JpYmUtMTkyODM3NDY5LUN0NlZyM0VlVTFBZzhRdzlYNXpaM2ItMA", Timestamp: at(1700000780),
			Recipient: "gu.haas@example.com", MessageID: msgG, CampaignID: "newsletter"},
	}
	if len(elems) != len(want) {
		t.Fatalf("fixture has %d elements, table %d", len(elems), len(want))
	}
	seen := map[string]int{}
	for i, e := range elems {
		got := ParseEvent(e)
		if got.ParseError != "" {
			t.Errorf("element %d: ParseError %q", i, got.ParseError)
		}
		if got.Timestamp.Location() != time.UTC {
			t.Errorf("element %d: Timestamp %v not in UTC", i, got.Timestamp)
		}
		if string(got.Body) != string(e) {
			t.Errorf("element %d: Body is not the element as sent:\n got %s\nwant %s", i, got.Body, e)
		}
		if j, dup := seen[got.EventID]; dup {
			t.Errorf("elements %d and %d share EventID %q", j, i, got.EventID)
		}
		seen[got.EventID] = i
		got.Body = nil
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("element %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
}

func TestParseEventTemplateAndCategory(t *testing.T) {
	tests := []struct {
		name, elem           string
		campaign, templateID string
	}{
		{"category string", `{"event":"open","category":"cat facts"}`, "cat facts", ""},
		{"category array", `{"event":"open","category":["welcome","onboarding"]}`, "welcome", ""},
		{"category empty array", `{"event":"open","category":[]}`, "", ""},
		{"category number", `{"event":"open","category":7}`, "7", ""},
		{"no category", `{"event":"open"}`, "", ""},
		{"template_id", `{"event":"open","template_id":"d-1"}`, "", "d-1"},
		{"sg_template_id when template_id is absent", `{"event":"open","sg_template_id":"d-2"}`, "", "d-2"},
		{"template_id wins over sg_template_id", `{"event":"open","sg_template_id":"d-2","template_id":"d-1"}`, "", "d-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := ParseEvent(json.RawMessage(tt.elem))
			if ev.ParseError != "" {
				t.Fatalf("ParseError %q", ev.ParseError)
			}
			if ev.CampaignID != tt.campaign || ev.TemplateID != tt.templateID {
				t.Errorf("CampaignID %q TemplateID %q, want %q %q", ev.CampaignID, ev.TemplateID, tt.campaign, tt.templateID)
			}
		})
	}
}

func TestParseEventWrapper(t *testing.T) {
	for typ, want := range map[string]string{
		"processed": "delivery_event", "deferred": "delivery_event", "delivered": "delivery_event",
		"bounce": "delivery_event", "dropped": "delivery_event",
		"open": "engagement_event", "click": "engagement_event", "spamreport": "engagement_event",
		"unsubscribe": "engagement_event", "group_unsubscribe": "engagement_event", "group_resubscribe": "engagement_event",
		"account_status_change": "account_event",
		"teleport":              "",
	} {
		ev := ParseEvent(json.RawMessage(`{"event":"` + typ + `","sg_event_id":"x"}`))
		if ev.Type != typ || ev.Wrapper != want || ev.ParseError != "" {
			t.Errorf("%s: type %q wrapper %q (ParseError %q), want wrapper %q", typ, ev.Type, ev.Wrapper, ev.ParseError, want)
		}
	}
}

func TestParseEventOddElements(t *testing.T) {
	elems := sourcetest.Elems(t, Provider, "odd-elements.json")
	tests := []struct {
		wantErr string // substring of ParseError; "" = a clean parse
		typ     string
		eventID string // "" = a hash of the element
	}{
		{wantErr: "element is a JSON number"},
		{wantErr: "element is a JSON null"},
		{wantErr: "element is a JSON string"},
		{wantErr: `event has no "event"`},
		{wantErr: `bad timestamp "yesterday"`, typ: "delivered", eventID: "YmFkLXRpbWVzdGFtcC0w"},
		{typ: "click"}, // duplicate "event": the last wins, as with encoding/json
	}
	if len(elems) != len(tests) {
		t.Fatalf("fixture has %d elements, table %d", len(elems), len(tests))
	}
	seen := map[string]int{}
	for i, tt := range tests {
		ev := ParseEvent(elems[i])
		if tt.wantErr == "" && ev.ParseError != "" || !strings.Contains(ev.ParseError, tt.wantErr) {
			t.Errorf("element %d (%s): ParseError = %q, want %q", i, elems[i], ev.ParseError, tt.wantErr)
		}
		if ev.Type != tt.typ {
			t.Errorf("element %d: Type %q, want %q", i, ev.Type, tt.typ)
		}
		wantID := tt.eventID
		if wantID == "" {
			wantID = source.HashID(elems[i])
		}
		if ev.EventID != wantID || !strings.HasPrefix(ev.EventID, "h-") && tt.eventID == "" {
			t.Errorf("element %d: EventID %q, want %q", i, ev.EventID, wantID)
		}
		if len(ev.Body) == 0 {
			t.Errorf("element %d: empty Body: an odd event must still be storable", i)
		}
		if j, dup := seen[ev.EventID]; dup {
			t.Errorf("elements %d and %d share EventID %q", j, i, ev.EventID)
		}
		seen[ev.EventID] = i
	}
}

func TestParseEventTimestamp(t *testing.T) {
	tests := []struct {
		raw     string // the JSON value of "timestamp"; "" = absent
		want    time.Time
		wantErr bool
	}{
		{`1700000000`, time.Unix(1700000000, 0), false},
		{`"1700000000"`, time.Unix(1700000000, 0), false},
		{`1700000000.25`, time.Unix(1700000000, 250000000), false},
		{`"2023-11-14T22:13:20Z"`, time.Unix(1700000000, 0), false},
		{``, time.Time{}, false},
		{`null`, time.Time{}, false},
		{`"yesterday"`, time.Time{}, true},
		{`99999999999999`, time.Time{}, true}, // beyond year 9999
		{`true`, time.Time{}, true},
		{`[1700000000]`, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			elem := `{"event":"delivered","sg_event_id":"e-1","email":"a@example.com"`
			if tt.raw != "" {
				elem += `,"timestamp":` + tt.raw
			}
			ev := ParseEvent(json.RawMessage(elem + "}"))
			if gotErr := ev.ParseError != ""; gotErr != tt.wantErr {
				t.Fatalf("ParseError = %q, want error: %v", ev.ParseError, tt.wantErr)
			}
			if tt.wantErr && !strings.Contains(ev.ParseError, "timestamp") {
				t.Errorf("ParseError = %q, want it to name the timestamp", ev.ParseError)
			}
			if !ev.Timestamp.Equal(tt.want) || ev.Timestamp.Location() != time.UTC {
				t.Errorf("Timestamp = %v, want %v in UTC", ev.Timestamp, tt.want)
			}
			// A bad timestamp must not cost the event its other fields.
			if ev.Type != "delivered" || ev.EventID != "e-1" || ev.Recipient != "a@example.com" {
				t.Errorf("other fields lost: %+v", ev)
			}
		})
	}
}

func TestParseEventHashIDIsDeterministic(t *testing.T) {
	elem := json.RawMessage(`{"email":"a@example.com","timestamp":1700000000,"event":"open"}`)
	a, b := ParseEvent(elem), ParseEvent(elem)
	if a.EventID == "" || a.EventID != b.EventID {
		t.Fatalf("EventIDs %q and %q, want one non-empty hash twice", a.EventID, b.EventID)
	}
	if !strings.HasPrefix(a.EventID, "h-") || a.EventID != source.HashID(elem) {
		t.Errorf("EventID %q, want source.HashID of the element %q", a.EventID, source.HashID(elem))
	}
	// SendGrid re-posting the event with other whitespace or key order is the same event.
	same := ParseEvent(json.RawMessage("{ \"event\": \"open\",\n \"timestamp\": 1700000000, \"email\": \"a@example.com\" }"))
	if same.EventID != a.EventID {
		t.Errorf("reformatted element hashed to %q, want %q", same.EventID, a.EventID)
	}
	other := ParseEvent(json.RawMessage(`{"email":"a@example.com","timestamp":1700000001,"event":"open"}`))
	if other.EventID == a.EventID {
		t.Errorf("two different elements share hash id %q", a.EventID)
	}
	// A blank sg_event_id is no id.
	blank := ParseEvent(json.RawMessage(`{"email":"a@example.com","timestamp":1700000000,"event":"open","sg_event_id":"  "}`))
	if !strings.HasPrefix(blank.EventID, "h-") {
		t.Errorf("blank sg_event_id gave EventID %q, want a hash", blank.EventID)
	}
}

func TestParseEventNeverPanics(t *testing.T) {
	for _, s := range []string{``, ` `, `{`, `[`, `"`, `{"event":`, `{"event":"open",}`, "\xff", `{"\xff":1}`,
		`{"event":{"x":1},"sg_event_id":[],"email":{},"category":[[[]]],"timestamp":{}}`, `{"category":[1`} {
		ev := ParseEvent(json.RawMessage(s))
		if ev.EventID == "" {
			t.Errorf("%q: no EventID", s)
		}
	}
}

// An element no Split validated (ParseEvent is public) still parses to an error and a hash id.
func TestParseEventNeverFailsOnGarbage(t *testing.T) {
	for _, in := range []string{"", "{", `{"event":`, "\xff\xfe", `{"event" "open"}`, `{"event":"open",}`, `{"event":"open"} x`} {
		ev := ParseEvent(json.RawMessage(in))
		if ev.ParseError == "" || !strings.HasPrefix(ev.EventID, "h-") {
			t.Errorf("ParseEvent(%q) = ParseError %q, EventID %q; want an error and a hash id", in, ev.ParseError, ev.EventID)
		}
		if string(ev.Body) != in {
			t.Errorf("ParseEvent(%q).Body = %q, want the whole element", in, ev.Body)
		}
	}
}
