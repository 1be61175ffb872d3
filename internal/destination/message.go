package destination

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Segment message types Switchboard understands (SPEC §6.1).
const (
	TypeIdentify = "identify"
	TypeTrack    = "track"
	TypePage     = "page"
	TypeScreen   = "screen"
	TypeGroup    = "group"
	TypeAlias    = "alias"
	TypeDelete   = "delete"
)

// EventPrefix is put before every event name when a destination sets prefix_events; SuprSend
// documents it as the word, a space, a colon, a space, and workflows match on the exact bytes.
const EventPrefix = "segment : "

// jsonSpace is the whitespace JSON allows around values; bytes.TrimSpace would also strip
// Unicode spaces and so accept bodies no JSON parser would.
const jsonSpace = " \t\r\n"

// SplitBody splits a Segment webhook body: one message object, a JSON array of messages, or {"batch":[...]}.
// signed is the exact raw bytes X-Signature is computed over: the whole body for an object or {"batch"} body,
// and the FIRST ELEMENT's raw bytes (exactly as they appear in the body) for an array body (Segment signs only the first element).
// err (a message naming the problem) for malformed JSON, an empty body, a scalar, or a non-array "batch".
//
// Errors are domain EINVALID errors, so the handler answers 400, which Segment does not retry.
// Elements are returned whatever their JSON type; ParseMessage ignores the ones that are not
// objects, so one bad element does not reject its neighbours. An empty array or batch is valid
// and holds no messages; with no first element, an empty array's signed bytes are the whole body.
// Top-level fields beside "batch" (the HTTP API's shared context) are not merged into messages.
func SplitBody(body []byte) (msgs []json.RawMessage, signed []byte, err error) {
	trimmed := bytes.Trim(body, jsonSpace)
	if len(trimmed) == 0 {
		return nil, nil, domain.Errorf(domain.EINVALID, "empty body: want a Segment message, an array of messages or {\"batch\": [...]}")
	}
	if !json.Valid(body) {
		return nil, nil, syntaxError(body) // offsets count from the first byte the sender sent
	}
	switch trimmed[0] {
	case '[':
		msgs, err = splitArray(trimmed)
		if err != nil {
			return nil, nil, err
		}
		if len(msgs) == 0 {
			return msgs, body, nil
		}
		return msgs, msgs[0], nil
	case '{':
		// A map decodes keys case-sensitively, unlike a struct: only "batch" itself is a batch.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &top); err != nil {
			return nil, nil, syntaxError(trimmed)
		}
		batch, ok := top["batch"]
		if !ok {
			return []json.RawMessage{trimmed}, body, nil
		}
		if kind := jsonKind(batch); kind != "an array" {
			return nil, nil, domain.Errorf(domain.EINVALID, "\"batch\" is %s, want an array of messages", kind)
		}
		msgs, err = splitArray(batch)
		if err != nil {
			return nil, nil, err
		}
		return msgs, body, nil
	default:
		return nil, nil, domain.Errorf(domain.EINVALID, "body is %s, want a Segment message, an array of messages or {\"batch\": [...]}", jsonKind(trimmed))
	}
}

// splitArray returns the elements of a valid JSON array as sub-slices of arr, so the first
// element keeps the exact bytes Segment signed and the messages share the body's memory
// instead of keeping a second copy of a large batch alive.
func splitArray(arr []byte) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(arr))
	if _, err := dec.Token(); err != nil { // '['
		return nil, syntaxError(arr)
	}
	msgs := []json.RawMessage{}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(arr)
		}
		end := dec.InputOffset()
		start := end - int64(len(raw))
		if start >= 0 && bytes.Equal(arr[start:end], raw) {
			raw = arr[start:end:end]
		}
		msgs = append(msgs, raw)
	}
	return msgs, nil
}

// syntaxError describes why body is not JSON, with the byte offset a sender can look at.
func syntaxError(body []byte) error {
	var v json.RawMessage
	err := json.Unmarshal(body, &v)
	if se, ok := err.(*json.SyntaxError); ok {
		return domain.Errorf(domain.EINVALID, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	}
	if err != nil {
		return domain.Errorf(domain.EINVALID, "malformed JSON: %s", err.Error())
	}
	return domain.Errorf(domain.EINVALID, "malformed JSON")
}

// jsonKind names the JSON type of a valid value for error messages and ignore reasons.
func jsonKind(v []byte) string {
	v = bytes.TrimLeft(v, jsonSpace)
	if len(v) == 0 {
		return "empty"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// VerifySignature reports whether header equals lowercase hex HMAC-SHA1(secret, signed), in constant time.
//
// Hex case is not significant: the header is decoded and the MAC bytes compared, so an
// uppercase header from a proxy that rewrote it still verifies while a wrong MAC never does.
// An empty secret verifies nothing, because anyone can compute an HMAC with an empty key.
func VerifySignature(secret string, signed []byte, header string) bool {
	if secret == "" || len(header) != 2*sha1.Size {
		return false
	}
	got, err := hex.DecodeString(header)
	if err != nil {
		return false
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write(signed)
	return hmac.Equal(got, mac.Sum(nil))
}

// Sign returns the X-Signature Segment would send for signed; tests and the replay tool use it
// to build requests the handler accepts.
func Sign(secret string, signed []byte) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write(signed)
	return hex.EncodeToString(mac.Sum(nil))
}

// Message is the part of a Segment message Switchboard uses.
type Message struct {
	Type        string         // identify, track, page, screen, group, alias, delete (lower-cased)
	MessageID   string         // Segment's messageId, the dedupe key; may be empty
	UserID      string         // string or number in payload → string
	AnonymousID string         // set before a user is known
	PreviousID  string         // alias: the id being merged away
	GroupID     string         // group
	Event       string         // track
	Name        string         // page/screen name (fallback: properties.name)
	Timestamp   time.Time      // timestamp, else sentAt/receivedAt/originalTimestamp; zero if none
	Traits      map[string]any // identify traits (also context.traits when traits absent); group traits
	Properties  map[string]any // track/page/screen properties
}

// wireMessage holds raw fields so that one field of the wrong type becomes an ignore reason
// for that field instead of failing the whole decode.
type wireMessage struct {
	Type              json.RawMessage `json:"type"`
	MessageID         json.RawMessage `json:"messageId"`
	UserID            json.RawMessage `json:"userId"`
	AnonymousID       json.RawMessage `json:"anonymousId"`
	PreviousID        json.RawMessage `json:"previousId"`
	GroupID           json.RawMessage `json:"groupId"`
	Event             json.RawMessage `json:"event"`
	Name              json.RawMessage `json:"name"`
	Timestamp         json.RawMessage `json:"timestamp"`
	SentAt            json.RawMessage `json:"sentAt"`
	ReceivedAt        json.RawMessage `json:"receivedAt"`
	OriginalTimestamp json.RawMessage `json:"originalTimestamp"`
	Traits            json.RawMessage `json:"traits"`
	Properties        json.RawMessage `json:"properties"`
	Context           struct {
		Traits json.RawMessage `json:"traits"`
	} `json:"context"`
}

// ParseMessage parses one message. ignored is a short human reason when the message cannot be applied
// (unknown type, identify without userId, track without event, traits not an object, alias without previousId, ...). It never panics.
//
// Every type needs a userId or an anonymousId (Segment's own rule); identify, group, alias and
// delete need a userId because they change the profile keyed by it. Fields read before the
// problem was found (type, messageId, ids) are filled in even when ignored, for the log.
// Numbers inside traits and properties are json.Number, so large ids survive a round trip.
func ParseMessage(raw json.RawMessage) (m Message, ignored string) {
	if kind := jsonKind(raw); kind != "an object" {
		return m, "message is " + kind + ", want an object"
	}
	var w wireMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		// A type error can only come from a context that is not an object; encoding/json
		// still fills every other (raw) field, so the message stays usable without it.
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return m, "message is not valid JSON"
		}
	}

	var bad string
	if m.Type, bad = stringField("type", w.Type); bad != "" {
		return m, bad
	}
	m.Type = strings.ToLower(strings.TrimSpace(m.Type))
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{
		{"messageId", w.MessageID, &m.MessageID},
		{"userId", w.UserID, &m.UserID},
		{"anonymousId", w.AnonymousID, &m.AnonymousID},
		{"previousId", w.PreviousID, &m.PreviousID},
		{"groupId", w.GroupID, &m.GroupID},
	} {
		if *f.dst, bad = idField(f.name, f.raw); bad != "" {
			return m, bad
		}
	}
	for _, t := range []json.RawMessage{w.Timestamp, w.SentAt, w.ReceivedAt, w.OriginalTimestamp} {
		if ts, ok := parseTime(t); ok {
			m.Timestamp = ts
			break
		}
	}

	switch m.Type {
	case "":
		return m, "message has no type"
	case TypeIdentify, TypeTrack, TypePage, TypeScreen, TypeGroup, TypeAlias, TypeDelete:
	default:
		return m, "unknown type " + quoteShort(m.Type)
	}
	if m.UserID == "" && m.AnonymousID == "" {
		return m, m.Type + " without userId or anonymousId"
	}

	switch m.Type {
	case TypeIdentify:
		if m.UserID == "" {
			return m, "identify without userId"
		}
		field, traits := "traits", w.Traits
		if isAbsent(traits) {
			field, traits = "context.traits", w.Context.Traits
		}
		if m.Traits, bad = objectField(field, traits); bad != "" {
			return m, bad
		}
	case TypeTrack:
		if m.Event, bad = stringField("event", w.Event); bad != "" {
			return m, bad
		}
		if strings.TrimSpace(m.Event) == "" {
			return m, "track without event"
		}
		if m.Properties, bad = objectField("properties", w.Properties); bad != "" {
			return m, bad
		}
	case TypePage, TypeScreen:
		if m.Name, bad = stringField("name", w.Name); bad != "" {
			return m, bad
		}
		if m.Properties, bad = objectField("properties", w.Properties); bad != "" {
			return m, bad
		}
		if n, ok := m.Properties["name"].(string); ok && strings.TrimSpace(m.Name) == "" {
			m.Name = n
		}
		m.Name = strings.TrimSpace(m.Name)
	case TypeGroup:
		if m.UserID == "" {
			return m, "group without userId"
		}
		if m.GroupID == "" {
			return m, "group without groupId"
		}
		if m.Traits, bad = objectField("traits", w.Traits); bad != "" {
			return m, bad
		}
	case TypeAlias:
		if m.UserID == "" {
			return m, "alias without userId"
		}
		if m.PreviousID == "" {
			return m, "alias without previousId"
		}
		if m.PreviousID == m.UserID {
			return m, "alias with previousId equal to userId"
		}
	case TypeDelete:
		if m.UserID == "" {
			return m, "delete without userId"
		}
	}
	return m, ""
}

// isAbsent reports whether a field was missing or null, which Segment libraries use alike.
func isAbsent(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// stringField reads an optional string field; any other JSON type is a reason to ignore.
func stringField(name string, raw json.RawMessage) (string, string) {
	if isAbsent(raw) {
		return "", ""
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", name + " is " + jsonKind(raw) + ", want a string"
	}
	return s, ""
}

// idField reads an id that Segment allows as a string or a number; a number keeps its literal
// text so 42 and "42" name the same user. A blank id counts as missing.
func idField(name string, raw json.RawMessage) (string, string) {
	if isAbsent(raw) {
		return "", ""
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", name + " is not a valid string"
		}
		if strings.TrimSpace(s) == "" {
			return "", ""
		}
		return s, ""
	case c == '-' || c >= '0' && c <= '9':
		return string(raw), ""
	default:
		return "", name + " is " + jsonKind(raw) + ", want a string or number"
	}
}

// objectField decodes an optional object, keeping numbers as json.Number; absent or null gives
// an empty map so callers and JSON encodings see {} rather than null.
func objectField(name string, raw json.RawMessage) (map[string]any, string) {
	if isAbsent(raw) {
		return map[string]any{}, ""
	}
	if raw[0] != '{' {
		return nil, name + " is " + jsonKind(raw) + ", want an object"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	obj := map[string]any{}
	if err := dec.Decode(&obj); err != nil {
		return nil, name + " is not a valid object"
	}
	return obj, ""
}

// timeLayouts are the shapes Segment libraries send: ISO 8601 with an offset, and (from some
// server libraries) without one, which Segment itself reads as UTC.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"}

// parseTime reads one ISO 8601 timestamp field and returns it in UTC.
func parseTime(raw json.RawMessage) (time.Time, bool) {
	s, bad := stringField("", raw)
	if bad != "" || s == "" {
		return time.Time{}, false
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// quoteShort quotes s for a reason string, cut so a hostile value cannot bloat the log.
func quoteShort(s string) string {
	return `"` + domain.Truncate(s, 64) + `"`
}

// EventName returns the event name a message produces: track → event, page → "Viewed <name> Page", screen → "Viewed <name> Screen"
// (a page or screen without a name gives "Viewed Page" / "Viewed Screen", never a double space),
// prefixed "segment : " (exactly: word, space, colon, space) when prefix is true. ok=false for types that produce no event.
func EventName(m Message, prefix bool) (name string, ok bool) {
	switch m.Type {
	case TypeTrack:
		if strings.TrimSpace(m.Event) == "" {
			return "", false
		}
		name = m.Event
	case TypePage:
		name = viewed(m.Name, "Page")
	case TypeScreen:
		name = viewed(m.Name, "Screen")
	default:
		return "", false
	}
	if prefix {
		name = EventPrefix + name
	}
	return name, true
}

// viewed builds the Segment convention for page and screen events.
func viewed(name, kind string) string {
	if name = strings.TrimSpace(name); name == "" {
		return "Viewed " + kind
	}
	return "Viewed " + name + " " + kind
}
