package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Event is one provider event as parsed from one webhook element: the fields the event store
// indexes, and the body as received.
type Event struct {
	Wrapper        string          // the event's class as the provider groups them (SparkPost's msys key: message_event, track_event, …; SendGrid: delivery_event or engagement_event)
	Type           string          // the provider's event type ("delivery", "open", ...)
	EventID        string          // the provider's event id; when absent: HashID of the body
	Timestamp      time.Time       // when the provider says it happened, in UTC; zero when absent
	Recipient      string          // the recipient's address
	MessageID      string          // the provider's message id
	CampaignID     string          // campaign (SparkPost campaign_id; SendGrid's first category)
	TemplateID     string          // template_id
	TransmissionID string          // transmission_id (SparkPost)
	SubaccountID   string          // subaccount_id (SparkPost; number or string in payloads)
	BounceClass    string          // bounce_class (SparkPost; number or string in payloads)
	Body           json.RawMessage // the event object exactly as received (all fields kept); the whole element when it has no inner object
	ParseError     string          // non-empty when the element is odd; the event is still stored, with status "invalid"
}

// MaxMessageBytes is analytics-go's per-message limit; a larger track call is rejected by the
// client before it is sent, so Fit shrinks events to fit.
const MaxMessageBytes = 32000

// TruncatedKey is the property listing the keys dropped to fit MaxMessageBytes.
const TruncatedKey = "switchboard_truncated"

// DefaultUserIDKeys are the metadata keys tried when a source names none.
var DefaultUserIDKeys = []string{"user_id", "userId"}

// Outcome says what to do with a mapped event.
type Outcome int

// Outcomes of a provider's Map. The zero value is deliberately none of them, so a forgotten
// assignment is never mistaken for "send".
const (
	OutcomeSend    Outcome = iota + 1 // send the track call to Segment
	OutcomeNotSent                    // stored only: type not forwarded, filtered by Events, or too large even when shrunk
	OutcomeSkipped                    // no user id and the anonymous-id policy is "skip" (or there is no recipient to derive one)
	OutcomeInvalid                    // the event has a ParseError; it is stored with status "invalid"
)

// String returns the outcome as the event status the store and the API show.
func (o Outcome) String() string {
	switch o {
	case OutcomeSend:
		return "send"
	case OutcomeNotSent:
		return "not_sent"
	case OutcomeSkipped:
		return "skipped"
	case OutcomeInvalid:
		return "invalid"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// MessageID returns the deterministic, tenant-namespaced Segment messageId of an event:
// prefix + the first 40 hex chars of sha256(tenantID + "/" + eventID). Re-sends, retries and
// back-fills of one event thus collapse in Segment's dedupe, while two tenants sending the
// same provider event id never collide. Each provider has its own prefix ("sp-", "sg-").
func MessageID(prefix, tenantID, eventID string) string {
	sum := sha256.Sum256([]byte(tenantID + "/" + eventID))
	return prefix + hex.EncodeToString(sum[:])[:40]
}

// Allowed reports whether a source's `events` allow-list lets an event type through, with the
// reason when it does not.
func Allowed(s domain.SourceSettings, typ string) (ok bool, reason string) {
	if len(s.Events) > 0 && !slices.Contains(s.Events, typ) {
		return false, fmt.Sprintf("type %q is not in the source's events", typ)
	}
	return true, ""
}

// Identify sets the track call's userId from the first non-empty of the source's user-id keys
// in meta (a decoded metadata object), or else its anonymousId from the recipient by the
// source's anonymous-id policy. metaName and recipientName are the provider's names of the two
// ("rcpt_meta", "rcpt_to"), for the reason. ok=false means the event is skipped, for reason.
func Identify(t *delivery.SegmentMessage, s domain.SourceSettings, meta any, metaName, recipient, recipientName string) (ok bool, reason string) {
	keys := s.UserIDKeys
	if len(keys) == 0 {
		keys = DefaultUserIDKeys
	}
	if t.UserID = userID(meta, keys); t.UserID != "" {
		return true, ""
	}
	email := strings.TrimSpace(recipient)
	switch {
	case s.AnonymousID == domain.AnonymousSkip:
		return false, "no user id in " + metaName + " and anonymous_id is skip"
	case email == "":
		return false, "no user id in " + metaName + " and no " + recipientName
	case s.AnonymousID == domain.AnonymousEmail:
		t.AnonymousID = email
	default:
		sum := sha256.Sum256([]byte(strings.ToLower(email)))
		t.AnonymousID = hex.EncodeToString(sum[:])
	}
	return true, ""
}

// userID returns the first non-empty value among keys, as text. Numbers keep their JSON text;
// whitespace-only strings count as empty, and the id is sent trimmed.
func userID(meta any, keys []string) string {
	m, _ := meta.(map[string]any)
	for _, k := range keys {
		v := m[k]
		if raw, ok := v.(json.RawMessage); ok {
			v = scalar(raw)
		}
		switch v := v.(type) {
		case string:
			if s := strings.TrimSpace(v); s != "" {
				return s
			}
		case json.Number:
			return v.String()
		}
	}
	return ""
}

// Properties reads an event body into a track call's properties: each top-level member keeps
// its raw JSON (a json.RawMessage), which delivery.SegmentMessage.Payload copies as it is, so
// "every other field unchanged" holds down to the digits (1.50 stays 1.50, ids beyond 2^53 stay
// exact) and the body is not decoded into Go values only to be encoded again: that decode and
// encode were most of the processor's cost per event. A member named twice keeps its last
// value, as a decoder would. size is a hint of the number of members.
//
// body must be an element of a body Split accepted, so valid JSON. A body that is not valid
// UTF-8 is decoded instead, which turns its invalid bytes into U+FFFD as Segment expects.
func Properties(body []byte, size int) (map[string]any, error) {
	if !utf8.Valid(body) {
		return decodeObject(body, size)
	}
	if Kind(TrimSpace(body)) != '{' {
		return nil, fmt.Errorf("event is a JSON %s, not an object", KindName(TrimSpace(body)))
	}
	m := make(map[string]any, size)
	if !EachMember(body, func(key, val []byte) bool {
		m[KeyText(key)] = json.RawMessage(val)
		return true
	}) {
		return nil, fmt.Errorf("event is not a JSON object it can read to its end")
	}
	return m, nil
}

// decodeObject decodes an object with numbers kept as json.Number.
func decodeObject(body []byte, size int) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	m := make(map[string]any, size)
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil { // the body was null
		return nil, fmt.Errorf("event is not an object")
	}
	return m, nil
}

// StringField returns a top-level string or number member of properties (raw or decoded) as
// text, "" otherwise.
func StringField(props map[string]any, key string) string {
	switch v := props[key].(type) {
	case json.RawMessage:
		return ScalarText(v)
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// scalar decodes a raw JSON string to a string and keeps a raw number as a json.Number, as a
// decoder with UseNumber would; anything else is nil.
func scalar(raw json.RawMessage) any {
	switch r := TrimSpace(raw); Kind(r) {
	case '"':
		return ScalarText(r)
	case '0':
		return json.Number(r)
	}
	return nil
}

// ObjectField returns a top-level object member of properties as properties of its own (read
// as Properties reads a body), or nil when it is absent or not an object.
func ObjectField(props map[string]any, key string) map[string]any {
	switch v := props[key].(type) {
	case map[string]any:
		return v
	case json.RawMessage:
		m, _ := Properties(v, 8)
		return m
	}
	return nil
}

// SetProperty sets a Segment Email-spec property unless the value is blank.
func SetProperty(props map[string]any, key, val string) {
	if strings.TrimSpace(val) != "" {
		props[key] = val
	}
}

// Context returns the Segment context every provider's track call starts with: the
// integration that sent it (context.integration) and, when known, the recipient's email as a
// trait. Providers add the reader's ip and user agent to it for engagement events.
func Context(integration, version, email string) map[string]any {
	ctx := map[string]any{"integration": map[string]any{"name": integration, "version": version}}
	if email != "" {
		ctx["traits"] = map[string]any{"email": email}
	}
	return ctx
}
