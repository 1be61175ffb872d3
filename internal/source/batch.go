// Package source is the pure half of direction A (SparkPost → Segment): it splits a webhook
// batch into elements, parses each element tolerantly and maps it to a Segment track call.
// It does no I/O, so the hook handler, the workers and the tests share one meaning of "event".
package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// SplitBatch splits a SparkPost webhook body into its elements. Accepts a JSON array of
// objects. `[]`, `{}`, `[{"msys":{}}]` are pings (return nil, nil events, ping=true).
// Returns an error (with a human message naming the problem) when the body is not valid JSON
// or not an array (an object other than `{}` is an error). Elements are returned as raw bytes, unparsed.
//
// Errors are *domain.Error with code EINVALID, so the hook answers 400 with the message.
// Elements are sub-slices of body, not checked here: an odd element is ParseEvent's
// business, because one odd event must never fail its batch.
func SplitBatch(body []byte) (elems []json.RawMessage, ping bool, err error) {
	b := trimSpace(body)
	if len(b) == 0 {
		return nil, false, domain.Errorf(domain.EINVALID, "body is empty; expected a JSON array of SparkPost events")
	}
	if !json.Valid(b) {
		return nil, false, notJSON(json.Unmarshal(b, new(json.RawMessage)))
	}
	switch kindOf(b) {
	case '[':
		eachMember(b, func(_, val []byte) bool {
			elems = append(elems, val)
			return true
		})
		if isPingArray(elems) {
			return nil, true, nil
		}
		return elems, false, nil
	case '{':
		if len(trimSpace(b[1:len(b)-1])) == 0 {
			return nil, true, nil
		}
	}
	return nil, false, domain.Errorf(domain.EINVALID, "body is a JSON %s; expected a JSON array of SparkPost events", kindName(b))
}

func notJSON(err error) error {
	return domain.Errorf(domain.EINVALID, "body is not valid JSON: %v", err)
}

// isPingArray reports whether every element is SparkPost's validation element {"msys":{}}.
// An empty array is a ping too. Real batches fail on the first element, so this stays cheap.
func isPingArray(elems []json.RawMessage) bool {
	for _, e := range elems {
		var outer map[string]json.RawMessage
		if json.Unmarshal(e, &outer) != nil || len(outer) != 1 {
			return false
		}
		msys, ok := outer["msys"]
		if !ok {
			return false
		}
		var inner map[string]json.RawMessage
		if json.Unmarshal(msys, &inner) != nil || inner == nil || len(inner) != 0 {
			return false
		}
	}
	return true
}

// Event is one SparkPost event as parsed from one batch element.
type Event struct {
	Wrapper        string          // msys key: message_event, track_event, gen_event, unsubscribe_event, relay_event, ab_test_event, or any unknown key
	Type           string          // the event's "type" ("delivery", "open", ...)
	EventID        string          // "event_id"; when absent: "h-" + hex sha256 of the canonical JSON of the inner object
	Timestamp      time.Time       // from "timestamp" (Unix seconds as string or number, or ISO-8601), in UTC; zero when absent
	Recipient      string          // rcpt_to
	MessageID      string          // message_id
	CampaignID     string          // campaign_id
	TemplateID     string          // template_id
	TransmissionID string          // transmission_id
	SubaccountID   string          // subaccount_id (number or string in payloads)
	BounceClass    string          // bounce_class (number or string in payloads)
	Body           json.RawMessage // the inner event object exactly as received (all fields kept); the whole element when it has no inner object
	ParseError     string          // non-empty when the element is odd; the event is still stored, with status "invalid"
}

// innerFields are the raw values of the few fields the store indexes. They stay raw because
// SparkPost sends numbers as strings and strings as numbers depending on the event's age and type.
type innerFields struct {
	Type, EventID, Timestamp, RcptTo, MessageID, CampaignID, TemplateID, TransmissionID, SubaccountID, BounceClass []byte
}

// field returns where the value of the member named by the raw key goes, or nil. Names match
// exactly: unlike encoding/json's struct decoding, "Type" is not "type".
func (f *innerFields) field(rawKey []byte) *[]byte {
	name := rawKey
	if len(name) >= 2 && bytes.IndexByte(name, '\\') < 0 {
		name = name[1 : len(name)-1]
	} else {
		name = []byte(keyText(rawKey))
	}
	switch string(name) {
	case "type":
		return &f.Type
	case "event_id":
		return &f.EventID
	case "timestamp":
		return &f.Timestamp
	case "rcpt_to":
		return &f.RcptTo
	case "message_id":
		return &f.MessageID
	case "campaign_id":
		return &f.CampaignID
	case "template_id":
		return &f.TemplateID
	case "transmission_id":
		return &f.TransmissionID
	case "subaccount_id":
		return &f.SubaccountID
	case "bounce_class":
		return &f.BounceClass
	}
	return nil
}

// ParseEvent parses one batch element tolerantly.
//
// It never panics and always returns an EventID, so even an odd element can be stored once
// and deduplicated when SparkPost re-sends its batch.
func ParseEvent(elem json.RawMessage) (ev Event) {
	ev.Body = elem
	var problems []string
	defer func() {
		if ev.EventID == "" {
			ev.EventID = hashID(ev.Body)
		}
		ev.ParseError = strings.Join(problems, "; ")
	}()

	e := trimSpace(elem)
	wrapper, inner, problem := unwrap(e)
	if problem != "" {
		problems = append(problems, problem)
	}
	if inner == nil {
		return ev
	}
	ev.Wrapper = wrapper
	if kindOf(inner) != '{' {
		problems = append(problems, fmt.Sprintf("%q is a JSON %s, not an object", wrapper, kindName(inner)))
		return ev
	}
	ev.Body = inner

	var f innerFields
	eachMember(inner, func(key, val []byte) bool {
		if dst := f.field(key); dst != nil {
			*dst = val // the last of duplicate keys wins, as with encoding/json
		}
		return true
	})
	ev.Type = scalarText(f.Type)
	ev.EventID = strings.TrimSpace(scalarText(f.EventID))
	ev.Recipient = scalarText(f.RcptTo)
	ev.MessageID = scalarText(f.MessageID)
	ev.CampaignID = scalarText(f.CampaignID)
	ev.TemplateID = scalarText(f.TemplateID)
	ev.TransmissionID = scalarText(f.TransmissionID)
	ev.SubaccountID = scalarText(f.SubaccountID)
	ev.BounceClass = scalarText(f.BounceClass)
	if ev.Type == "" {
		problems = append(problems, `event has no "type"`)
	}
	ts, err := parseTimestamp(f.Timestamp)
	if err != nil {
		problems = append(problems, err.Error())
	}
	ev.Timestamp = ts
	return ev
}

// unwrap finds the wrapper key and inner event of an element {"msys":{"<wrapper>":{…}}} and
// names what is odd about it. inner is nil when there is nothing to parse; with several
// wrappers the first in document order is used, so the choice is stable.
func unwrap(e []byte) (wrapper string, inner []byte, problem string) {
	if !json.Valid(e) {
		return "", nil, "element is not valid JSON"
	}
	if kindOf(e) != '{' {
		return "", nil, fmt.Sprintf("element is a JSON %s, not an object", kindName(e))
	}
	var msys []byte
	eachMember(e, func(key, val []byte) bool {
		if keyText(key) == "msys" {
			msys = val
		}
		return true
	})
	if msys == nil || string(msys) == "null" {
		return "", nil, `element has no "msys"`
	}
	if kindOf(msys) != '{' {
		return "", nil, fmt.Sprintf(`"msys" is a JSON %s, not an object`, kindName(msys))
	}
	n := 0
	eachMember(msys, func(key, val []byte) bool {
		if n == 0 {
			wrapper, inner = keyText(key), val
		}
		n++
		return true
	})
	switch {
	case n == 0:
		return "", nil, `"msys" is empty (a ping element inside a batch of events)`
	case n > 1:
		problem = fmt.Sprintf(`"msys" has %d keys, expected 1; the first, %q, is used`, n, wrapper)
	}
	return wrapper, inner, problem
}

// scalarText returns a JSON string's value or a JSON number's text, and "" for anything else,
// because SparkPost sends ids and classes either way ("subaccount_id": 101 or "101").
func scalarText(raw json.RawMessage) string {
	r := trimSpace(raw)
	switch kindOf(r) {
	case '"':
		if len(r) >= 2 && bytes.IndexByte(r, '\\') < 0 && utf8.Valid(r) {
			return string(r[1 : len(r)-1]) // nothing to unescape: what encoding/json would return
		}
		var s string
		if json.Unmarshal(r, &s) == nil {
			return s
		}
	case '0':
		return string(r)
	}
	return ""
}

// hashID is the event id of an event that carries none (sms_status, odd elements): identical
// events hash identically, so a re-sent batch does not store them twice.
func hashID(raw []byte) string {
	sum := sha256.Sum256(canonicalJSON(raw))
	return "h-" + hex.EncodeToString(sum[:])
}

// canonicalJSON re-encodes raw with sorted keys, no insignificant whitespace and numbers kept
// as written, so whitespace and key order do not change the hash. Invalid JSON is hashed as is.
func canonicalJSON(raw []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return raw
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Unix seconds that time.Time can still write as RFC 3339 (years 1 to 9999): anything outside
// would make the Segment message impossible to encode, so it is a parse error instead.
const (
	minUnix = -62135596800
	maxUnix = 253402300799
)

// isoLayouts are the ISO-8601 forms accepted besides Unix seconds. Go accepts a fractional
// second after the seconds field even when the layout has none, so each covers both forms.
var isoLayouts = []string{
	time.RFC3339,                // 2019-06-16T19:02:09.373Z, 2019-06-16T19:02:09+02:00
	"2006-01-02T15:04:05Z0700",  // +0200
	"2006-01-02T15:04:05",       // no zone: UTC, as SparkPost's APIs are
	"2006-01-02 15:04:05Z07:00", // a space instead of the T
	"2006-01-02 15:04:05",
}

// parseTimestamp reads SparkPost's timestamp: Unix seconds as a number or a string, possibly
// with a fractional part, or ISO-8601. Absent, null and "" give the zero time without error.
func parseTimestamp(raw json.RawMessage) (time.Time, error) {
	r := trimSpace(raw)
	switch kindOf(r) {
	case 0, 'n':
		return time.Time{}, nil
	case '0':
		return parseUnix(string(r))
	case '"':
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return time.Time{}, fmt.Errorf("bad timestamp %s", r)
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return time.Time{}, nil
		}
		if looksNumeric(s) {
			return parseUnix(s)
		}
		for _, layout := range isoLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("bad timestamp %q: neither Unix seconds nor ISO-8601", s)
	}
	return time.Time{}, fmt.Errorf("bad timestamp %s: neither Unix seconds nor ISO-8601", truncate(string(r), 40))
}

// parseUnix reads decimal Unix seconds from their text, keeping the fraction exact to the
// nanosecond (a float64 would round it).
func parseUnix(s string) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("bad timestamp %q: not Unix seconds", truncate(s, 40))
	}
	if strings.ContainsAny(s, "eE") { // exponent form: rare, float precision is enough
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f < minUnix || f > maxUnix {
			return bad()
		}
		sec := math.Floor(f)
		return time.Unix(int64(sec), int64(math.Round((f-sec)*1e9))).UTC(), nil
	}
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	whole, frac, _ := strings.Cut(digits, ".")
	if whole == "" && frac == "" || !allDigits(whole) || !allDigits(frac) {
		return bad()
	}
	outOfRange := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("bad timestamp %q: out of range", truncate(s, 40))
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 12 { // beyond year 9999 whatever the digits; also keeps ParseInt from overflowing
		return outOfRange()
	}
	var sec int64
	if whole != "" {
		sec, _ = strconv.ParseInt(whole, 10, 64)
	}
	if len(frac) > 9 {
		frac = frac[:9]
	}
	var nsec int64
	if frac != "" {
		nsec, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	if neg {
		sec, nsec = -sec, -nsec
	}
	if sec < minUnix || sec > maxUnix {
		return outOfRange()
	}
	return time.Unix(sec, nsec).UTC(), nil
}

// looksNumeric tells Unix seconds in a string ("1460989507.123") from ISO-8601, which always
// has a letter, a colon or a space besides digits and dashes.
func looksNumeric(s string) bool {
	return strings.Trim(s, "0123456789.+-eE") == ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// trimSpace trims JSON whitespace only; bytes.TrimSpace would also eat bytes JSON rejects.
func trimSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// kindOf classifies a trimmed JSON value by its first byte: '{', '[', '"', '0' (number),
// 't', 'f', 'n', or 0 when empty.
func kindOf(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	switch c := b[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		return '0'
	default:
		return c
	}
}

// kindName names a JSON value's kind for error messages a SparkPost admin can act on.
func kindName(b []byte) string {
	switch kindOf(b) {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case 0:
		return "nothing"
	}
	return "value"
}
