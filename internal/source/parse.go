package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Finish completes a provider's parse of one element under Provider.Parse's contract: the
// event always leaves with an EventID (HashID of its body when the provider found none) and
// what was odd about it joined in ParseError. A parse never fails: one odd event must never fail
// its batch.
func (ev *Event) Finish(problems []string) {
	if ev.EventID == "" {
		ev.EventID = HashID(ev.Body)
	}
	ev.ParseError = strings.Join(problems, "; ")
}

// Fields are the raw values of the members the event store indexes, as found in one event
// object. They stay raw until Fill: providers send numbers as strings and strings as numbers
// depending on an event's age and type.
type Fields struct {
	Type, EventID, Timestamp, Recipient, MessageID, CampaignID, TemplateID, TransmissionID, SubaccountID, BounceClass []byte
	// TemplateAlt is a second name of the template id (SendGrid's sg_template_id), used when
	// TemplateID is absent.
	TemplateAlt []byte
}

// Read walks the event object obj and keeps the raw value of each member that where places
// (where gets f and the member's name and returns the field it goes to, or nil); the last of
// duplicate keys wins, as with encoding/json. Names match exactly: "Type" is not "type". It
// reports whether obj was an object it could read to its end.
func (f *Fields) Read(obj []byte, where func(f *Fields, name []byte) *[]byte) bool {
	return EachMember(obj, func(key, val []byte) bool {
		name := key
		if len(name) >= 2 && bytes.IndexByte(name, '\\') < 0 {
			name = name[1 : len(name)-1]
		} else {
			name = []byte(KeyText(key))
		}
		if dst := where(f, name); dst != nil {
			*dst = val
		}
		return true
	})
}

// Fill sets ev's indexed fields from f and returns what is wrong with them; typeName is the
// provider's name of its type member, for the message. Each field is the text of a string or
// number; any other JSON kind leaves it empty (a provider that sends arrays says what they mean).
func (f *Fields) Fill(ev *Event, typeName string) (problems []string) {
	ev.Type = ScalarText(f.Type)
	ev.EventID = strings.TrimSpace(ScalarText(f.EventID))
	ev.Recipient = ScalarText(f.Recipient)
	ev.MessageID = ScalarText(f.MessageID)
	ev.CampaignID = ScalarText(f.CampaignID)
	ev.TemplateID = ScalarText(f.TemplateID)
	if f.TemplateID == nil {
		ev.TemplateID = ScalarText(f.TemplateAlt)
	}
	ev.TransmissionID = ScalarText(f.TransmissionID)
	ev.SubaccountID = ScalarText(f.SubaccountID)
	ev.BounceClass = ScalarText(f.BounceClass)
	if ev.Type == "" {
		problems = append(problems, fmt.Sprintf("event has no %q", typeName))
	}
	ts, err := ParseTimestamp(f.Timestamp)
	if err != nil {
		problems = append(problems, err.Error())
	}
	ev.Timestamp = ts
	return problems
}

// FirstText is raw's text, or its first element's when raw is an array.
func FirstText(raw []byte) string {
	if Kind(TrimSpace(raw)) != '[' {
		return ScalarText(raw)
	}
	var first string
	EachMember(raw, func(_, val []byte) bool {
		first = ScalarText(val)
		return false
	})
	return first
}

// NotAnObject names what is wrong with a batch element that should be an event object, or
// returns "" when it begins as one. Elements come from a body Split validated, so they are not
// validated again (that was a fifth of the processor's parse cost); the walk that reads the
// object still reports one it cannot read to its end, as "element is not valid JSON".
func NotAnObject(e []byte) string {
	switch k := Kind(e); {
	case k == '{':
		return ""
	case k == 0 || !json.Valid(e):
		return InvalidElement
	}
	return fmt.Sprintf("element is a JSON %s, not an object", KindName(e))
}

// InvalidElement is the parse problem of an element that is not JSON.
const InvalidElement = "element is not valid JSON"

// SplitArray splits a webhook body that must be a JSON array into its elements, sub-slices of
// body left unparsed (an odd element is the provider's Parse's business). what names the
// elements for the error messages ("SparkPost events"); errors are EINVALID and name the
// problem: an empty body, invalid JSON, or another JSON kind.
func SplitArray(body []byte, what string) ([]json.RawMessage, error) {
	b := TrimSpace(body)
	if len(b) == 0 {
		return nil, domain.Errorf(domain.EINVALID, "body is empty; expected a JSON array of %s", what)
	}
	if !json.Valid(b) {
		return nil, domain.Errorf(domain.EINVALID, "body is not valid JSON: %v", json.Unmarshal(b, new(json.RawMessage)))
	}
	if Kind(b) != '[' {
		return nil, domain.Errorf(domain.EINVALID, "body is a JSON %s; expected a JSON array of %s", KindName(b), what)
	}
	return ArrayElements(b), nil
}

// ArrayElements returns the elements of a JSON array that was validated before, sub-slices of
// body: the stored body of a batch, which the hook accepted through SplitArray. It reads no
// further than a structural error, so any input is safe, but only a valid array gives all of them.
func ArrayElements(body []byte) []json.RawMessage {
	elems := []json.RawMessage{}
	EachMember(body, func(_, val []byte) bool {
		elems = append(elems, val)
		return true
	})
	return elems
}
