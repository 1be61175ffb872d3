package sparkpost

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
		{name: "empty array with whitespace", body: " \n[ ]\r\n", ping: true},
		{name: "empty object", body: `{}`, ping: true},
		{name: "validation batch", body: `[{"msys":{}}]`, ping: true},
		{name: "two validation elements", body: `[{"msys":{}}, {"msys": {}}]`, ping: true},
		{name: "one event", body: `[{"msys":{"message_event":{"type":"delivery"}}}]`, n: 1},
		{name: "ping element beside an event is not a ping", body: `[{"msys":{}},{"msys":{"message_event":{}}}]`, n: 2},
		{name: "array of non-objects", body: `[1, "x", null, []]`, n: 4},
		{name: "object with extra key beside msys is not a ping", body: `[{"msys":{},"x":1}]`, n: 1},
		{name: "empty body", body: ``, wantErr: "body is empty"},
		{name: "whitespace body", body: " \n ", wantErr: "body is empty"},
		{name: "truncated array", body: `[{"msys":{}}`, wantErr: "not valid JSON"},
		{name: "garbage", body: `hello`, wantErr: "not valid JSON"},
		{name: "trailing garbage", body: `[] x`, wantErr: "not valid JSON"},
		{name: "non-empty object", body: `{"msys":{}}`, wantErr: "body is a JSON object"},
		{name: "string", body: `"[]"`, wantErr: "body is a JSON string"},
		{name: "number", body: `42`, wantErr: "body is a JSON number"},
		{name: "null", body: `null`, wantErr: "body is a JSON null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			elems, ping, err := SplitBatch([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if code := domain.ErrorCode(err); code != domain.EINVALID {
					t.Errorf("error code = %q, want %q (the hook answers 400)", code, domain.EINVALID)
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

func TestSplitBatchKeepsElementBytes(t *testing.T) {
	elem := `{"msys": {"message_event": {"type": "delivery",  "x": 1.50}}}`
	elems, _, err := SplitBatch([]byte("[" + elem + " , 7]"))
	if err != nil {
		t.Fatal(err)
	}
	if string(elems[0]) != elem || string(elems[1]) != "7" {
		t.Fatalf("elements = %q, want the bytes as sent", elems)
	}
}

func TestParseEventFields(t *testing.T) {
	elems := sourcetest.Elems(t, Provider, "batch-mixed.json")
	tests := []struct {
		idx  int
		want source.Event // Body, EventID of hashed events and ParseError are checked apart
	}{
		{0, source.Event{Wrapper: "message_event", Type: "delivery", EventID: "1001", Timestamp: time.Unix(1460989507, 0),
			Recipient: "Ana@Example.com", MessageID: "m-1", CampaignID: "spring", TemplateID: "t-1", TransmissionID: "tx-1", SubaccountID: "101"}},
		{1, source.Event{Wrapper: "track_event", Type: "click", EventID: "1002", Timestamp: time.Unix(1454442600, 0),
			Recipient: "bo@example.com", MessageID: "m-2", CampaignID: "spring"}},
		{2, source.Event{Wrapper: "track_event", Type: "open", EventID: "1003", Timestamp: time.Unix(1460989507, 123000000), Recipient: "cy@example.com"}},
		{3, source.Event{Wrapper: "message_event", Type: "bounce", EventID: "1004", Timestamp: time.Date(2019, 6, 16, 19, 2, 9, 373000000, time.UTC),
			Recipient: "di@example.com", BounceClass: "10", SubaccountID: "7"}},
		{4, source.Event{Wrapper: "message_event", Type: "sms_status", Timestamp: time.Date(2019, 6, 16, 17, 2, 9, 0, time.UTC)}},
		{5, source.Event{Wrapper: "unsubscribe_event", Type: "list_unsubscribe", EventID: "1006", Timestamp: time.Unix(1460989507, 0),
			Recipient: "ed@example.com", CampaignID: "newsletter"}},
		{6, source.Event{Wrapper: "future_event", Type: "teleport", EventID: "1007", Timestamp: time.Unix(1460989507, 0), Recipient: "fa@example.com"}},
	}
	for _, tt := range tests {
		got := ParseEvent(elems[tt.idx])
		if got.ParseError != "" {
			t.Errorf("element %d: ParseError %q", tt.idx, got.ParseError)
		}
		if !got.Timestamp.Equal(tt.want.Timestamp) {
			t.Errorf("element %d: Timestamp = %v, want %v", tt.idx, got.Timestamp, tt.want.Timestamp)
		}
		if tt.want.EventID == "" {
			if !strings.HasPrefix(got.EventID, "h-") {
				t.Errorf("element %d: EventID = %q, want a hash id", tt.idx, got.EventID)
			}
			tt.want.EventID = got.EventID
		}
		got.Body, got.Timestamp, tt.want.Timestamp = nil, time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("element %d:\n got %+v\nwant %+v", tt.idx, got, tt.want)
		}
	}
}

func TestParseEventBodyIsTheInnerObjectAsSent(t *testing.T) {
	inner := `{ "type":"delivery", "b": 1.50, "a": "x" }`
	ev := ParseEvent(json.RawMessage(`{"msys":{"message_event":` + inner + `}}`))
	if string(ev.Body) != inner {
		t.Fatalf("Body = %s, want %s", ev.Body, inner)
	}
}

func TestParseEventTimestamp(t *testing.T) {
	tests := []struct {
		raw     string // the JSON value of "timestamp"; "" = absent
		want    time.Time
		wantErr bool
	}{
		{`"1460989507"`, time.Unix(1460989507, 0), false},
		{`1454442600`, time.Unix(1454442600, 0), false},
		{`"1460989507.123"`, time.Unix(1460989507, 123000000), false},
		{`1460989507.5`, time.Unix(1460989507, 500000000), false},
		{`" 1460989507 "`, time.Unix(1460989507, 0), false},
		{`1.4609895e9`, time.Unix(1460989500, 0), false},
		{`"2019-06-16T19:02:09.373Z"`, time.Date(2019, 6, 16, 19, 2, 9, 373000000, time.UTC), false},
		{`"2019-06-16T19:02:09Z"`, time.Date(2019, 6, 16, 19, 2, 9, 0, time.UTC), false},
		{`"2019-06-16T19:02:09+02:00"`, time.Date(2019, 6, 16, 17, 2, 9, 0, time.UTC), false},
		{`"2019-06-16T19:02:09.5-0500"`, time.Date(2019, 6, 17, 0, 2, 9, 500000000, time.UTC), false},
		{`"2019-06-16T19:02:09"`, time.Date(2019, 6, 16, 19, 2, 9, 0, time.UTC), false},
		{`"2019-06-16 19:02:09"`, time.Date(2019, 6, 16, 19, 2, 9, 0, time.UTC), false},
		{``, time.Time{}, false},
		{`null`, time.Time{}, false},
		{`""`, time.Time{}, false},
		{`"yesterday"`, time.Time{}, true},
		{`"2019-13-45T99:00:00Z"`, time.Time{}, true},
		{`"12.34.56"`, time.Time{}, true},
		{`"99999999999999"`, time.Time{}, true}, // year > 9999: Segment could not encode it
		{`1e300`, time.Time{}, true},
		{`true`, time.Time{}, true},
		{`{"s":1}`, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			inner := `{"type":"delivery","event_id":"7","rcpt_to":"a@example.com"`
			if tt.raw != "" {
				inner += `,"timestamp":` + tt.raw
			}
			ev := ParseEvent(json.RawMessage(`{"msys":{"message_event":` + inner + `}}}`))
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
			if ev.Type != "delivery" || ev.EventID != "7" || ev.Recipient != "a@example.com" {
				t.Errorf("other fields lost: %+v", ev)
			}
		})
	}
}

func TestParseEventOddElements(t *testing.T) {
	elems := sourcetest.Elems(t, Provider, "odd-elements.json")
	tests := []struct {
		wantErr     string // substring of ParseError
		wantWrapper string
		wantType    string
	}{
		{wantErr: "element is a JSON number"},
		{wantErr: "element is a JSON string"},
		{wantErr: "element is a JSON null"},
		{wantErr: "element is a JSON array"},
		{wantErr: `element has no "msys"`},
		{wantErr: `"msys" is a JSON number`},
		{wantErr: `element has no "msys"`},
		{wantErr: `"msys" is empty`},
		{wantErr: `"msys" has 2 keys`, wantWrapper: "message_event", wantType: "delivery"},
		{wantErr: `"message_event" is a JSON array`, wantWrapper: "message_event"},
		{wantErr: `no "type"`, wantWrapper: "message_event"},
		{wantErr: `bad timestamp "yesterday"`, wantWrapper: "message_event", wantType: "delivery"},
		{wantErr: "out of range", wantWrapper: "message_event", wantType: "delivery"},
		{wantErr: "bad timestamp true", wantWrapper: "message_event", wantType: "delivery"},
	}
	if len(elems) != len(tests) {
		t.Fatalf("fixture has %d elements, table %d", len(elems), len(tests))
	}
	seen := map[string]int{}
	for i, tt := range tests {
		ev := ParseEvent(elems[i])
		if !strings.Contains(ev.ParseError, tt.wantErr) {
			t.Errorf("element %d (%s): ParseError = %q, want it to contain %q", i, elems[i], ev.ParseError, tt.wantErr)
		}
		if ev.Wrapper != tt.wantWrapper || ev.Type != tt.wantType {
			t.Errorf("element %d: wrapper %q type %q, want %q %q", i, ev.Wrapper, ev.Type, tt.wantWrapper, tt.wantType)
		}
		if ev.EventID == "" || len(ev.Body) == 0 {
			t.Errorf("element %d: EventID %q, Body %q: an odd event must still be storable", i, ev.EventID, ev.Body)
		}
		if j, dup := seen[ev.EventID]; dup {
			t.Errorf("elements %d and %d share EventID %q", j, i, ev.EventID)
		}
		seen[ev.EventID] = i
		if _, out, _ := Map("ten_1", ev, domain.SourceSettings{}); out != source.OutcomeInvalid {
			t.Errorf("element %d: Map outcome %v, want invalid", i, out)
		}
	}
	// Without an inner object the whole element is stored, so nothing is lost from the event list.
	if ev := ParseEvent(elems[9]); string(ev.Body) != string(elems[9]) {
		t.Errorf("Body = %s, want the whole element", ev.Body)
	}
	// The bad-timestamp event keeps everything else.
	if ev := ParseEvent(elems[11]); ev.EventID != "2003" || ev.MessageID != "m-2003" || ev.Recipient != "x@example.com" {
		t.Errorf("bad timestamp lost fields: %+v", ev)
	}
}

func TestParseEventNeverFailsOnGarbage(t *testing.T) {
	for _, in := range []string{"", "{", `{"msys":`, "\xff\xfe", `{"msys":{"m":{"type":"delivery","timestamp":"1"`,
		`{"msys":{"m":{"type" "delivery"}}}`, `{"msys":{"m":{"type":"delivery",}}}`, `{"msys":{"m":{}} x}`} {
		ev := ParseEvent(json.RawMessage(in))
		if ev.ParseError == "" || !strings.HasPrefix(ev.EventID, "h-") {
			t.Errorf("ParseEvent(%q) = ParseError %q, EventID %q; want an error and a hash id", in, ev.ParseError, ev.EventID)
		}
		if string(ev.Body) != in { // what cannot be read is stored whole, so nothing of it is lost
			t.Errorf("ParseEvent(%q).Body = %q, want the whole element", in, ev.Body)
		}
	}
}

func TestHashIDIsCanonical(t *testing.T) {
	parse := func(inner string) string {
		ev := ParseEvent(json.RawMessage(`{"msys":{"message_event":` + inner + `}}`))
		if ev.ParseError != "" {
			t.Fatalf("%s: %s", inner, ev.ParseError)
		}
		return ev.EventID
	}
	a := parse(`{"type":"sms_status","n":1.50,"s":"<x>","o":{"z":1,"y":[2,3]}}`)
	b := parse("{ \"o\" : {\"y\":[2, 3],\"z\":1},\n\t\"s\":\"<x>\", \"n\":1.50, \"type\":\"sms_status\" }")
	if a != b {
		t.Errorf("same event, other whitespace and key order: %s != %s", a, b)
	}
	canonical := `{"n":1.50,"o":{"y":[2,3],"z":1},"s":"<x>","type":"sms_status"}`
	sum := sha256.Sum256([]byte(canonical))
	if want := "h-" + hex.EncodeToString(sum[:]); a != want {
		t.Errorf("hash id = %s, want sha256 of %s = %s", a, canonical, want)
	}
	if c := parse(`{"type":"sms_status","n":1.5,"s":"<x>","o":{"z":1,"y":[2,3]}}`); c == a {
		t.Errorf("1.5 and 1.50 hash the same; numbers must keep their text")
	}
	if d := parse(`{"type":"sms_status","event_id":""}`); !strings.HasPrefix(d, "h-") {
		t.Errorf("empty event_id gives %q, want a hash id", d)
	}
}

func TestSplitAndParseNumbersAsStrings(t *testing.T) {
	ev := ParseEvent(json.RawMessage(`{"msys":{"message_event":{"type":"bounce","event_id":92356927693813856,"subaccount_id":"101","bounce_class":"10","timestamp":"1"}}}`))
	if ev.EventID != "92356927693813856" || ev.SubaccountID != "101" || ev.BounceClass != "10" {
		t.Fatalf("got event_id %q subaccount %q bounce_class %q", ev.EventID, ev.SubaccountID, ev.BounceClass)
	}
	if !bytes.Contains(ev.Body, []byte(`92356927693813856`)) {
		t.Fatalf("Body lost the id: %s", ev.Body)
	}
}

func TestKeyTextDecodesEscapes(t *testing.T) {
	ev := ParseEvent(json.RawMessage(`{"\u006dsys":{"message_event":{"\u0074ype":"delivery","Type":"open","event_id":"1"}}}`))
	if ev.ParseError != "" || ev.Type != "delivery" {
		t.Errorf("type %q, ParseError %q: escaped keys must match, other cases must not", ev.Type, ev.ParseError)
	}
}
