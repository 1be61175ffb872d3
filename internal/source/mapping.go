package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxMessageBytes is analytics-go's per-message limit; a larger track call is rejected by the
// client before it is sent, so Map shrinks events to fit.
const MaxMessageBytes = 32000

// Anonymous-id policies of a source (SPEC §5.4 `anonymous_id`).
const (
	AnonymousSHA256Email = "sha256_email" // hex SHA-256 of the lower-cased trimmed rcpt_to (the default)
	AnonymousEmail       = "email"        // the trimmed rcpt_to itself
	AnonymousSkip        = "skip"         // do not send events without a user id
)

// TruncatedKey is the property listing the keys dropped to fit MaxMessageBytes.
const TruncatedKey = "switchboard_truncated"

// IntegrationVersion is sent as context.integration.version; bump it when the mapping changes
// in a way a Segment user could notice.
const IntegrationVersion = "1.0.0"

// defaultUserIDKeys are the rcpt_meta keys tried when a source names none.
var defaultUserIDKeys = []string{"user_id", "userId"}

// Settings are the per-source options that affect mapping (SPEC §5.4).
type Settings struct {
	UserIDKeys          []string // default ["user_id","userId"] when empty
	AnonymousID         string   // "sha256_email" (default when empty or unknown) | "email" | "skip"
	Events              []string // optional allow-list of SparkPost types to send; empty = all mappable; it never adds a type SegmentEventName refuses
	ForwardInitialOpens bool     // send initial_open/amp_initial_open as "Email Opened" (they double-count with open)
}

// SegmentEventName maps a SparkPost type to the Segment event name; ok=false means "stored, not sent".
func SegmentEventName(sparkpostType string, forwardInitialOpens bool) (name string, ok bool) {
	switch sparkpostType {
	case "delivery":
		return "Email Delivered", true
	case "bounce", "out_of_band":
		return "Email Bounced", true
	case "open", "amp_open":
		return "Email Opened", true
	case "initial_open", "amp_initial_open":
		if forwardInitialOpens {
			return "Email Opened", true
		}
	case "click", "amp_click":
		return "Email Link Clicked", true
	case "spam_complaint":
		return "Email Marked as Spam", true
	case "list_unsubscribe", "link_unsubscribe":
		return "Unsubscribed", true
	case "injection":
		return "Email Sent", true
	case "delay":
		return "Email Deferred", true
	case "policy_rejection", "generation_failure", "generation_rejection":
		return "Email Dropped", true
	}
	return "", false
}

// MessageID returns the deterministic, tenant-namespaced Segment messageId: "sp-" + first 40 hex chars of sha256(tenantID + "/" + eventID).
// Re-sends, retries and back-fills of one event thus collapse in Segment's dedupe, while two
// tenants sending the same SparkPost event id never collide.
func MessageID(tenantID, eventID string) string {
	sum := sha256.Sum256([]byte(tenantID + "/" + eventID))
	return "sp-" + hex.EncodeToString(sum[:])[:40]
}

// Track is a Segment track call ready to send (the sender converts it to analytics-go's analytics.Track).
type Track struct {
	MessageID   string
	UserID      string
	AnonymousID string
	Event       string
	Timestamp   time.Time
	Properties  map[string]any // values as decoded with UseNumber: numbers are json.Number, keeping their text
	Context     map[string]any // integration, traits.email, ip, userAgent, location
}

// Outcome says what to do with a mapped event.
type Outcome int

// Outcomes of Map. The zero value is deliberately none of them, so a forgotten assignment is
// never mistaken for "send".
const (
	OutcomeSend    Outcome = iota + 1 // send Track to Segment
	OutcomeNotSent                    // stored only: type not forwarded, filtered by Events, or too large even when shrunk
	OutcomeSkipped                    // no user id and the anonymous-id policy is "skip" (or there is no rcpt_to to derive one)
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

// specKeys are the Segment Email-spec properties Map sets; the size rule never drops them
// before every other property is gone.
var specKeys = map[string]bool{
	"email_id": true, "email_subject": true, "campaign_id": true, "campaign_name": true,
	"link_url": true, "link_id": true, "list_id": true,
}

// Map builds the Segment track call for an event. reason explains NotSent/Skipped in a few words.
func Map(tenantID string, ev Event, s Settings) (t Track, out Outcome, reason string) {
	if ev.ParseError != "" {
		return Track{}, OutcomeInvalid, "invalid event: " + ev.ParseError
	}
	name, ok := SegmentEventName(ev.Type, s.ForwardInitialOpens)
	if !ok {
		if isInitialOpen(ev.Type) {
			return Track{}, OutcomeNotSent, "initial opens are not forwarded"
		}
		return Track{}, OutcomeNotSent, fmt.Sprintf("type %q is not sent to Segment", ev.Type)
	}
	if len(s.Events) > 0 && !slices.Contains(s.Events, ev.Type) {
		return Track{}, OutcomeNotSent, fmt.Sprintf("type %q is not in the source's events", ev.Type)
	}
	props, err := decodeObject(ev.Body)
	if err != nil {
		return Track{}, OutcomeInvalid, "invalid event: " + err.Error()
	}

	t = Track{MessageID: MessageID(tenantID, ev.EventID), Event: name, Timestamp: ev.Timestamp}
	email := strings.TrimSpace(ev.Recipient)
	keys := s.UserIDKeys
	if len(keys) == 0 {
		keys = defaultUserIDKeys
	}
	if t.UserID = userID(props["rcpt_meta"], keys); t.UserID == "" {
		switch {
		case s.AnonymousID == AnonymousSkip:
			return Track{}, OutcomeSkipped, "no user id in rcpt_meta and anonymous_id is skip"
		case email == "":
			return Track{}, OutcomeSkipped, "no user id in rcpt_meta and no rcpt_to"
		case s.AnonymousID == AnonymousEmail:
			t.AnonymousID = email
		default:
			t.AnonymousID = sha256Hex(strings.ToLower(email))
		}
	}

	t.Context = buildContext(ev.Type, email, props)
	setSpecProperties(props, ev)
	t.Properties = props
	if sizeBound(&t, len(ev.Body)) <= MaxMessageBytes {
		return t, OutcomeSend, "" // surely small enough: skip encoding it just to measure
	}
	if size, err := fit(&t); err != nil {
		return Track{}, OutcomeNotSent, "cannot encode for Segment: " + err.Error()
	} else if size > MaxMessageBytes {
		return Track{}, OutcomeNotSent, fmt.Sprintf("%d bytes even without properties; Segment's limit is %d", size, MaxMessageBytes)
	}
	return t, OutcomeSend, ""
}

func isInitialOpen(typ string) bool { return typ == "initial_open" || typ == "amp_initial_open" }

// isEngagement reports the types whose ip_address and user_agent are the reader's (opens and
// clicks), not SparkPost's MTA or the receiving server.
func isEngagement(typ string) bool {
	switch typ {
	case "open", "amp_open", "initial_open", "amp_initial_open", "click", "amp_click":
		return true
	}
	return false
}

// decodeObject decodes the inner event with numbers kept as json.Number, so "every other field
// unchanged" holds down to the digits (1.50 stays 1.50, ids beyond 2^53 stay exact).
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// Sized for a SparkPost event (25–45 fields) plus the spec keys: no rehash while decoding.
	m := make(map[string]any, 48)
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil { // the body was null
		return nil, fmt.Errorf("event is not an object")
	}
	return m, nil
}

// userID returns the first non-empty rcpt_meta value among keys, as text. Numbers keep their
// JSON text; whitespace-only strings count as empty, and the id is sent trimmed.
func userID(meta any, keys []string) string {
	m, _ := meta.(map[string]any)
	for _, k := range keys {
		switch v := m[k].(type) {
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

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// setSpecProperties adds Segment's Email-spec keys. SparkPost's own fields stay as they are,
// except campaign_id, which is both and is sent as the spec's string.
func setSpecProperties(props map[string]any, ev Event) {
	set := func(key, val string) {
		if strings.TrimSpace(val) != "" {
			props[key] = val
		}
	}
	set("email_id", ev.MessageID)
	set("email_subject", stringField(props, "subject"))
	set("campaign_id", ev.CampaignID)
	set("campaign_name", ev.CampaignID)
	switch ev.Type {
	case "click", "amp_click":
		set("link_url", stringField(props, "target_link_url"))
		// SparkPost's click events call it target_link_name; link_name is the name in SPEC.
		if id := stringField(props, "link_name"); strings.TrimSpace(id) != "" {
			set("link_id", id)
		} else {
			set("link_id", stringField(props, "target_link_name"))
		}
	case "list_unsubscribe", "link_unsubscribe":
		set("list_id", ev.CampaignID)
	}
}

// stringField returns a top-level string or number field as text, "" otherwise.
func stringField(props map[string]any, key string) string {
	switch v := props[key].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// buildContext fills Segment's context. Only engagement events carry the reader's ip and
// user agent; on other types ip_address is a mail server's, which would mislocate the user.
func buildContext(typ, email string, props map[string]any) map[string]any {
	ctx := map[string]any{
		"integration": map[string]any{"name": "sparkpost", "version": IntegrationVersion},
	}
	if email != "" {
		ctx["traits"] = map[string]any{"email": email}
	}
	if !isEngagement(typ) {
		return ctx
	}
	if ip := strings.TrimSpace(stringField(props, "ip_address")); ip != "" {
		ctx["ip"] = ip
	}
	if ua := stringField(props, "user_agent"); strings.TrimSpace(ua) != "" {
		ctx["userAgent"] = ua
	}
	if loc := location(props["geo_ip"]); len(loc) > 0 {
		ctx["location"] = loc
	}
	return ctx
}

// location maps SparkPost's geo_ip to Segment's context.location. Segment's spec has city,
// country, region, latitude and longitude (numbers) but no postal code, so zip/postal_code stay
// in properties.geo_ip only. Older payloads send latitude as a string; it is converted.
func location(geo any) map[string]any {
	g, ok := geo.(map[string]any)
	if !ok {
		return nil
	}
	loc := make(map[string]any, 5)
	for _, k := range []string{"city", "country", "region"} {
		if s := strings.TrimSpace(stringField(g, k)); s != "" {
			loc[k] = s
		}
	}
	for _, k := range []string{"latitude", "longitude"} {
		if f, ok := finiteFloat(stringField(g, k)); ok {
			loc[k] = f
		}
	}
	return loc
}

func finiteFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// wireTrack is the track message as analytics-go encodes it (its Track struct's JSON names),
// used only to measure the size the client will check.
type wireTrack struct {
	Type        string         `json:"type"`
	MessageID   string         `json:"messageId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	UserID      string         `json:"userId,omitempty"`
	Event       string         `json:"event"`
	Timestamp   time.Time      `json:"timestamp"`
	Context     map[string]any `json:"context,omitempty"`
	Properties  map[string]any `json:"properties,omitempty"`
}

// longestTimestamp stands in for a zero Timestamp, which analytics-go replaces with the current
// local time: the longest RFC 3339 form keeps the measurement an upper bound.
var longestTimestamp = time.Date(2006, 1, 2, 15, 4, 5, 999999999, time.FixedZone("", -7*3600))

// encodedSize returns the length of t as analytics-go will encode it.
func encodedSize(t *Track) (int, error) {
	w := wireTrack{"track", t.MessageID, t.AnonymousID, t.UserID, t.Event, t.Timestamp, t.Context, t.Properties}
	if w.Timestamp.IsZero() {
		w.Timestamp = longestTimestamp
	}
	b, err := json.Marshal(w)
	return len(b), err
}

// sizeBound is an upper bound of encodedSize that costs no encoding. Re-encoding JSON never
// makes a byte of it longer than 6 bytes (the worst is "<" or an invalid byte becoming
// \u003c or \ufffd), properties are the body plus copies of its strings under the spec keys,
// and everything else is the context, the ids and a fixed frame.
func sizeBound(t *Track, bodyLen int) int {
	const frame = 1024 // field names, messageId, event name, timestamp, spec key names, JSON punctuation
	n := bodyLen + len(t.UserID) + len(t.AnonymousID) + contentBytes(t.Context)
	for k := range specKeys {
		if s, ok := t.Properties[k].(string); ok {
			n += len(s)
		}
	}
	return frame + 6*n
}

// contentBytes adds up the strings (keys included) in a context-shaped value, counting each
// number as its longest encoding.
func contentBytes(v any) int {
	switch v := v.(type) {
	case string:
		return len(v)
	case float64:
		return 24
	case map[string]any:
		n := 0
		for k, e := range v {
			n += len(k) + 4 + contentBytes(e) // quotes, colon and comma
		}
		return n
	}
	return 0
}

// propCost is the encoded size one property adds to the message.
type propCost struct {
	key  string
	cost int
}

// fit applies SPEC's size rule: drop the largest non-spec properties, largest encoded first,
// until the message fits MaxMessageBytes, and list them (sorted) in switchboard_truncated.
// When even that is not enough the spec keys go too, because a message Segment refuses helps
// nobody. It returns the final size, which exceeds the limit only if the context alone does.
func fit(t *Track) (int, error) {
	size, err := encodedSize(t)
	if err != nil || size <= MaxMessageBytes {
		return size, err
	}
	var plain, spec []propCost
	for k, v := range t.Properties {
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(v)
		if err != nil {
			return 0, err
		}
		c := propCost{k, len(kb) + 1 + len(vb) + 1} // "key":value plus its comma
		if specKeys[k] {
			spec = append(spec, c)
		} else {
			plain = append(plain, c)
		}
	}
	byCost := func(a, b propCost) int {
		if a.cost != b.cost {
			return b.cost - a.cost
		}
		return strings.Compare(a.key, b.key) // ties broken by name: the same event always loses the same keys
	}
	slices.SortFunc(plain, byCost)
	slices.SortFunc(spec, byCost)

	var dropped []string
	estimate := size
	for _, c := range append(plain, spec...) {
		delete(t.Properties, c.key)
		dropped = append(dropped, c.key)
		estimate -= c.cost
		list := slices.Sorted(slices.Values(dropped))
		lb, _ := json.Marshal(list)
		extra := len(TruncatedKey) + 3 + len(lb) + 1 // "switchboard_truncated":[...] plus its comma
		if estimate+extra > MaxMessageBytes {
			continue
		}
		t.Properties[TruncatedKey] = list
		if size, err = encodedSize(t); err != nil || size <= MaxMessageBytes {
			return size, err
		}
		// The estimate was optimistic (commas, an emptied map): measure again and go on.
		delete(t.Properties, TruncatedKey)
		if estimate, err = encodedSize(t); err != nil {
			return 0, err
		}
	}
	t.Properties[TruncatedKey] = slices.Sorted(slices.Values(dropped))
	return encodedSize(t)
}
