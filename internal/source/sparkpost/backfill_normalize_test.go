package sparkpost_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
)

func TestNormalizeMakesWebhookElements(t *testing.T) {
	cases := []struct {
		name, in              string
		wrapper, typ, eventID string
		at                    time.Time
		keep                  map[string]string // fields that must come through byte for byte
		parseError            bool
	}{
		{name: "click, whole seconds", in: `{"type":"click","event_id":"92356927693813856","timestamp":"2016-04-18T14:25:07.000+00:00","subaccount_id":101,"msg_size":"1337","geo_ip":{"latitude":39.1749},"target_link_url":"http://example.com/?a=1&b=<2>"}`,
			wrapper: "track_event", typ: "click", eventID: "92356927693813856", at: time.Unix(1460989507, 0),
			keep: map[string]string{"timestamp": `"1460989507"`, "subaccount_id": `101`, "msg_size": `"1337"`, "geo_ip": `{"latitude":39.1749}`, "target_link_url": `"http://example.com/?a=1&b=<2>"`}},
		{name: "milliseconds kept", in: `{"type":"delivery","event_id":"1","timestamp":"2019-06-16T19:02:09.373Z"}`,
			wrapper: "message_event", typ: "delivery", eventID: "1", at: time.Date(2019, 6, 16, 19, 2, 9, 373e6, time.UTC),
			keep: map[string]string{"timestamp": `"2019-06-16T19:02:09.373Z"`}},
		{name: "unsubscribe", in: `{"type":"list_unsubscribe","event_id":"2","timestamp":"2019-06-16T19:02:09.000Z"}`, wrapper: "unsubscribe_event", typ: "list_unsubscribe", eventID: "2", at: time.Unix(1560711729, 0)},
		{name: "generation failure", in: `{"type":"generation_failure","event_id":"3","timestamp":"2019-06-16T19:02:09Z"}`, wrapper: "gen_event", typ: "generation_failure", eventID: "3", at: time.Unix(1560711729, 0)},
		{name: "relay", in: `{"type":"relay_delivery","event_id":"4","timestamp":"2019-06-16T19:02:09Z"}`, wrapper: "relay_event", typ: "relay_delivery", eventID: "4", at: time.Unix(1560711729, 0)},
		{name: "a type SparkPost adds later", in: `{"type":"amp_something","event_id":"5","timestamp":"2019-06-16T19:02:09Z"}`, wrapper: "message_event", typ: "amp_something", eventID: "5", at: time.Unix(1560711729, 0)},
		{name: "not an object", in: `"oops"`, parseError: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			elem := sparkpost.NormalizeEventsAPI(json.RawMessage(c.in))
			if !json.Valid(elem) {
				t.Fatalf("not JSON: %s", elem)
			}
			ev := sparkpost.ParseEvent(elem)
			if c.parseError {
				if ev.ParseError == "" {
					t.Fatalf("parsed %s without complaint", elem)
				}
				return
			}
			if ev.ParseError != "" || ev.Wrapper != c.wrapper || ev.Type != c.typ || ev.EventID != c.eventID || !ev.Timestamp.Equal(c.at) {
				t.Fatalf("parsed %s as %+v", elem, ev)
			}
			var inner map[string]json.RawMessage
			json.Unmarshal(ev.Body, &inner)
			for k, want := range c.keep {
				if string(inner[k]) != want {
					t.Errorf("%s = %s, want %s", k, inner[k], want)
				}
			}
		})
	}
}

// TestNormalizeSparkPostSamples runs the public Events API samples (when ../shared is beside the
// project) through NormalizeEventsAPI and the webhook parser.
func TestNormalizeSparkPostSamples(t *testing.T) {
	b, err := os.ReadFile("../../../../shared/sparkpost-samples/events-api-message-page-2web2ui.json")
	if err != nil {
		t.Skip("no SparkPost samples beside the project")
	}
	var page struct{ Results []json.RawMessage }
	if err := json.Unmarshal(b, &page); err != nil || len(page.Results) == 0 {
		t.Fatalf("sample page: %v", err)
	}
	for _, r := range page.Results {
		ev := sparkpost.ParseEvent(sparkpost.NormalizeEventsAPI(r))
		var flat struct {
			Type    string
			EventID string `json:"event_id"`
		}
		json.Unmarshal(r, &flat)
		if ev.ParseError != "" || ev.Timestamp.IsZero() || ev.EventID != flat.EventID || ev.Type != flat.Type || ev.Wrapper != sparkpost.WrapperOf(ev.Type) {
			t.Errorf("sample event parsed as %+v", ev)
		}
	}
}
