package sendgrid

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
)

// SplitBatch splits an Event Webhook body into its elements. SendGrid posts a JSON array of
// event objects; `[]` has nothing to store and counts as a ping. Anything else is an EINVALID
// error naming the problem. Elements are sub-slices of body, not checked here: an odd element
// is ParseEvent's business, because one odd event must never fail its batch.
func SplitBatch(body []byte) (elems []json.RawMessage, ping bool, err error) {
	b := source.TrimSpace(body)
	if len(b) == 0 {
		return nil, false, domain.Errorf(domain.EINVALID, "body is empty; expected a JSON array of SendGrid events")
	}
	if !json.Valid(b) {
		return nil, false, domain.Errorf(domain.EINVALID, "body is not valid JSON: %v", json.Unmarshal(b, new(json.RawMessage)))
	}
	if source.Kind(b) != '[' {
		return nil, false, domain.Errorf(domain.EINVALID, "body is a JSON %s; expected a JSON array of SendGrid events", source.KindName(b))
	}
	source.EachMember(b, func(_, val []byte) bool {
		elems = append(elems, val)
		return true
	})
	if len(elems) == 0 {
		return nil, true, nil
	}
	return elems, false, nil
}

// fields are the raw values of the members the store indexes. They stay raw: SendGrid sends
// category as a string or an array, and asm_group_id as a number.
type fields struct {
	Event, EventID, Timestamp, Email, MessageID, Category, TemplateID, SGTemplateID []byte
}

func (f *fields) field(rawKey []byte) *[]byte {
	switch source.KeyText(rawKey) {
	case "event":
		return &f.Event
	case "sg_event_id":
		return &f.EventID
	case "timestamp":
		return &f.Timestamp
	case "email":
		return &f.Email
	case "sg_message_id":
		return &f.MessageID
	case "category":
		return &f.Category
	case "template_id":
		return &f.TemplateID
	case "sg_template_id":
		return &f.SGTemplateID
	}
	return nil
}

// ParseEvent parses one element tolerantly. It never panics and always returns an EventID
// (sg_event_id, or a hash of the element), so an odd element is stored once and deduplicated
// when SendGrid posts it again.
func ParseEvent(elem json.RawMessage) (ev source.Event) {
	ev.Body = elem
	var problems []string
	defer func() {
		if ev.EventID == "" {
			ev.EventID = source.HashID(ev.Body)
		}
		ev.ParseError = strings.Join(problems, "; ")
	}()
	e := source.TrimSpace(elem)
	if !json.Valid(e) {
		problems = append(problems, "element is not valid JSON")
		return ev
	}
	if source.Kind(e) != '{' {
		problems = append(problems, fmt.Sprintf("element is a JSON %s, not an object", source.KindName(e)))
		return ev
	}
	ev.Body = e
	var f fields
	source.EachMember(e, func(key, val []byte) bool {
		if dst := f.field(key); dst != nil {
			*dst = val // the last of duplicate keys wins, as with encoding/json
		}
		return true
	})
	ev.Type = source.ScalarText(f.Event)
	ev.Wrapper = wrapper(ev.Type)
	ev.EventID = strings.TrimSpace(source.ScalarText(f.EventID))
	ev.Recipient = source.ScalarText(f.Email)
	ev.MessageID = source.ScalarText(f.MessageID)
	ev.CampaignID = firstCategory(f.Category)
	ev.TemplateID = source.ScalarText(f.TemplateID)
	if ev.TemplateID == "" {
		ev.TemplateID = source.ScalarText(f.SGTemplateID)
	}
	if ev.Type == "" {
		problems = append(problems, `event has no "event"`)
	}
	ts, err := source.ParseTimestamp(f.Timestamp)
	if err != nil {
		problems = append(problems, err.Error())
	}
	ev.Timestamp = ts
	return ev
}

// firstCategory returns category's text, or the first element's when SendGrid sent several.
func firstCategory(raw []byte) string {
	if source.Kind(source.TrimSpace(raw)) != '[' {
		return source.ScalarText(raw)
	}
	var first string
	source.EachMember(raw, func(_, val []byte) bool {
		first = source.ScalarText(val)
		return false
	})
	return first
}

// wrapper is the event's class as SendGrid's reference groups them; the event store shows it
// (without _event) as `class`.
func wrapper(typ string) string {
	switch typ {
	case "processed", "deferred", "delivered", "bounce", "dropped":
		return "delivery_event"
	case "open", "click", "spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe":
		return "engagement_event"
	case "account_status_change":
		return "account_event"
	}
	return ""
}
