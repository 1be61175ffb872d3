package sparkpost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// FuzzEventJSON checks the hand-written renderer against encoding/json: whatever the stored
// body, the result is valid JSON; for a JSON object body every member comes through with its
// value, next to Switchboard's own keys; each string member reads back, as a CSV cell, as the
// string encoding/json decodes.
func FuzzEventJSON(f *testing.F) {
	for _, seed := range []string{
		`{"type":"click","event_id":"1","timestamp":"1460989507","rcpt_to":"a@example.com","geo_ip":{"city":"K\u00f6ln","lat":[1,2,{"x":"}"}]}}`,
		`{"a":"quote \" and backslash \\\\ and \"}\" inside","b":[],"c":{},"d":null,"e":true,"f":-1.5e3}`,
		`{ "spaced" : "out" , "nested" : { "deep" : [ 1 , "2" ] } }`,
		`{"class":"theirs","switchboard":1,"type":"open"}`,
		`{"s":"\ud83c\udf89 \u00e9 \n\t\/"}`,
		`{}`, `[]`, `"just a string"`, `{"unterminated": "`, `{"a":1,}`, `{"a" 1}`, `not json`, ``, `{"":00}`, `{ "" : [] } }`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e := &store.EmailEvent{ID: 1, EventID: "ev-1", Type: "delivery", Wrapper: "message_event", Body: body,
			Time: time.Unix(1460989507, 0), Status: store.EventNotSent, Reason: "r"}
		out := AppendEventJSON(nil, e)
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("invalid JSON for body %q: %v\n%s", body, err, out)
		}
		if string(got["event_id"]) != `"ev-1"` || string(got["timestamp"]) != `"2016-04-18T14:25:07.000Z"` || got["switchboard"] == nil {
			t.Fatalf("own keys missing: %s", out)
		}
		var in map[string]json.RawMessage
		if !json.Valid(body) || !utf8.Valid(body) || json.Unmarshal(body, &in) != nil || in == nil {
			return // the body is shown as text
		}
		for k, v := range in {
			switch k {
			case "class", "switchboard", "timestamp", "event_id":
				continue
			}
			if !jsonEqual(got[k], v) {
				t.Fatalf("member %q: %s, want %s (body %q)", k, got[k], v, body)
			}
			var s string
			if json.Unmarshal(v, &s) == nil {
				if cell := appendCellValue(nil, bytes.TrimSpace(v)); string(cell) != s {
					t.Fatalf("member %q as a cell: %q, want %q", k, cell, s)
				}
			}
		}
	})
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// FuzzEventQuery feeds arbitrary query strings to the email-events query parser: it must never
// panic, and every refusal must be a 400 naming a parameter.
func FuzzEventQuery(f *testing.F) {
	for _, seed := range []string{
		"events=delivery,open&recipients=a@b.com&from=2024-01-01T00:00:00Z&to=2024-02-01",
		"campaigns=spring*&timezone=America/New_York&from=2024-03-10T01:30:00&per_page=10000",
		"cursor=eyJ0IjoxLCJpZCI6Mn0&delimiter=;",
		"events=' OR 1=1 --&per_page=-1",
		"timezone=../../etc/passwd",
		"from=9999-99-99&to=&bounce_classes=10,,20",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, raw string, csv bool) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if _, err := ParseEventQuery(q, csv); err != nil && domain.ErrorCode(err) != domain.EINVALID {
			t.Fatalf("query %q: %v (want an invalid-input error)", raw, err)
		}
	})
}

// TestCSVDefusesFormulas: a cell that a spreadsheet would run as a formula gets a leading quote
// (OWASP's CSV-injection advice); numbers and ordinary text are written as they are.
func TestCSVDefusesFormulas(t *testing.T) {
	body := `{"type":"click","user_agent":"=HYPERLINK(\"http://evil.example\",\"x\")","reason":"+1 bounce","a":"-2+3","b":"@SUM(A1)",` +
		`"c":"\tTAB","d":"\rCR","e":-5,"f":"plain","g":"a=b","h":""}`
	e := &store.EmailEvent{ID: 1, EventID: "ev-1", Type: "click", Wrapper: "track_event", Body: []byte(body), Time: time.Unix(1460989507, 0)}
	var buf bytes.Buffer
	enc := newCSVEncoder(&buf, []string{"user_agent", "reason", "a", "b", "c", "d", "e", "f", "g", "h"}, time.UTC)
	enc.event(e)
	enc.w.Flush()
	want := `"'=HYPERLINK(""http://evil.example"",""x"")",'+1 bounce,'-2+3,'@SUM(A1),'` + "\tTAB,\"'\rCR\",-5,plain,a=b,\n"
	if buf.String() != want {
		t.Fatalf("CSV row:\n%q\nwant\n%q", buf.String(), want)
	}
}
