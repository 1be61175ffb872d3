// Package sourcetest holds the checks every provider's tests run, so that a new provider's
// fuzz test is its seeds and one call.
package sourcetest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
)

// Seed adds every testdata/*.json file of the calling package, then each of extra, to f's corpus.
func Seed(f *testing.F, extra ...string) {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// CheckBody sends body through p's whole pure pipeline (Split, Parse, and Map under each of
// settings) and fails t unless what the hook, the store and the sender rely on holds: a split
// error is EINVALID with no elements; every event has an EventID, and a clean parse a type and
// a valid JSON body; timestamps are UTC within years 1–9999; every outcome but send has a
// reason; a sent call is a track with an event name, a user, a messageId starting with
// idPrefix and at most 100 bytes, fits Segment's per-message limit once encoded, and is stored
// as the payload json.Marshal would give.
func CheckBody(t *testing.T, p source.Provider, body []byte, settings []domain.SourceSettings, idPrefix string) {
	t.Helper()
	elems, ping, err := p.Split(body)
	if err != nil {
		if ping || elems != nil {
			t.Fatalf("error %v with ping %v and %d elements", err, ping, len(elems))
		}
		if domain.ErrorCode(err) != domain.EINVALID {
			t.Fatalf("error %v is not EINVALID", err)
		}
		return
	}
	if ping && len(elems) > 0 {
		t.Fatalf("ping with %d elements", len(elems))
	}
	if s, ok := p.(source.StoredSplitter); ok && !ping {
		// The processor splits the stored copy of an accepted body this way.
		if stored := s.SplitStored(body); !slices.EqualFunc(stored, elems, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("SplitStored gives %d elements, Split %d (or different ones)", len(stored), len(elems))
		}
	}
	for _, e := range elems {
		ev := p.Parse(e)
		if ev.EventID == "" {
			t.Fatalf("no EventID for %q", e)
		}
		if ev.ParseError == "" && (ev.Type == "" || !json.Valid(ev.Body)) {
			t.Fatalf("clean parse without type or with invalid body: %+v", ev)
		}
		if ev.Timestamp.Year() > 9999 || (!ev.Timestamp.IsZero() && ev.Timestamp.Location() != time.UTC) {
			t.Fatalf("timestamp %v", ev.Timestamp)
		}
		for _, s := range settings {
			tr, out, reason := p.Map("ten_fuzz", ev, s)
			switch out {
			case source.OutcomeSend:
				if tr.Type != "track" || tr.Event == "" || tr.UserID == "" && tr.AnonymousID == "" ||
					!strings.HasPrefix(tr.MessageID, idPrefix) || len(tr.MessageID) > 100 {
					t.Fatalf("bad track %+v", tr)
				}
				size, err := source.EncodedSize(&tr)
				if err != nil || size > source.MaxMessageBytes {
					t.Fatalf("track of %d bytes, err %v", size, err)
				}
				// The stored payload is the message json.Marshal would give, value for value.
				payload, err := tr.Payload()
				if err != nil {
					t.Fatalf("payload: %v", err)
				}
				if enc, _ := json.Marshal(&tr); Compact(t, payload) != Compact(t, enc) {
					t.Fatalf("payload %s\nis not what json.Marshal gives: %s", payload, enc)
				}
			case source.OutcomeNotSent, source.OutcomeSkipped, source.OutcomeInvalid:
				if reason == "" {
					t.Fatalf("%v without a reason", out)
				}
			default:
				t.Fatalf("outcome %v", out)
			}
		}
	}
}

// Elems reads testdata/name of the calling package and splits it with p, failing tb unless it
// is a batch of events (not an error, not a ping).
func Elems(tb testing.TB, p source.Provider, name string) []json.RawMessage {
	tb.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	elems, ping, err := p.Split(body)
	if err != nil || ping {
		tb.Fatalf("%s's Split(%s) = ping %v, err %v", p.Title(), name, ping, err)
	}
	return elems
}

// Compact re-encodes JSON with sorted keys, no whitespace and no HTML escaping, numbers as
// written, so that two encodings of one value compare equal.
func Compact(tb testing.TB, raw []byte) string {
	tb.Helper()
	if !json.Valid(raw) { // the decoder would take a first value and leave the rest unread
		tb.Fatalf("invalid JSON %s", raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("invalid JSON %s: %v", raw, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// AsSent replaces tr's properties with those of its stored payload, decoded with numbers as
// json.Number: the values a test compares are what Segment gets, not the providers' raw copies.
func AsSent(tb testing.TB, tr *delivery.SegmentMessage) {
	tb.Helper()
	payload, err := tr.Payload()
	if err != nil {
		tb.Fatalf("payload: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var sent struct {
		Properties map[string]any `json:"properties"`
	}
	if err := dec.Decode(&sent); err != nil {
		tb.Fatalf("payload %s: %v", payload, err)
	}
	tr.Properties = sent.Properties
}
