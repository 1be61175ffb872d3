package delivery_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
)

// samePayload fails t unless m's stored payload decodes to what json.Marshal's encoding of m
// decodes to.
func samePayload(t *testing.T, m *delivery.SegmentMessage) {
	t.Helper()
	got, err := m.Payload()
	if err != nil {
		t.Fatalf("Payload: %v", err)
	}
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("payload %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("payload %s\n   want %s", got, want)
	}
}

func TestPayloadIsWhatMarshalGives(t *testing.T) {
	ts := time.Date(2024, 3, 1, 12, 30, 0, 123456789, time.UTC)
	for _, s := range []string{"", "plain", `quo"te`, `back\slash`, "tab\tnl\nret\r", "\x00\x01\x1f\x7f", "<b>&amp;</b>",
		"é ü 日本", "\u2028\u2029", "bad \xff\xfe utf-8", "cut \xe6\x97"} {
		samePayload(t, &delivery.SegmentMessage{
			Type: "track", MessageID: "sp-" + s, UserID: s, Event: "Email " + s, Timestamp: ts,
			Properties: map[string]any{
				s: s, "raw": json.RawMessage(`{"n": 1.50, "big": 12345678901234567890, "s": "x"}`), "list": []string{s, "b"},
				"num": json.Number("7"), "nested": map[string]any{"k": s}, "empty": json.RawMessage(nil),
			},
			Context: map[string]any{"integration": map[string]any{"name": "sparkpost", "version": "1.0.0"}, "ip": s,
				"location": map[string]any{"latitude": 37.4192, "city": s}},
		})
	}
	samePayload(t, &delivery.SegmentMessage{Type: "track", MessageID: "m", AnonymousID: "a", Event: "E"}) // zero time, no properties
}

func TestPayloadRefusesAYearJSONCannotHold(t *testing.T) {
	m := &delivery.SegmentMessage{Type: "track", MessageID: "m", UserID: "u", Event: "E", Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := m.Payload(); err == nil {
		t.Fatal("year 10000 encoded")
	}
}

func FuzzPayloadString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028", "<&>", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		samePayload(t, &delivery.SegmentMessage{Type: "track", MessageID: s, UserID: s, Event: s,
			Properties: map[string]any{s: s, "x": []any{s}}, Context: map[string]any{s: map[string]any{s: s}}})
	})
}
