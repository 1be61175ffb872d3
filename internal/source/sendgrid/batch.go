package sendgrid

import (
	"encoding/json"

	"github.com/switchboard-hub/switchboard/internal/source"
)

// SplitBatch splits an Event Webhook body into its elements. SendGrid posts a JSON array of
// event objects; `[]` has nothing to store and counts as a ping. Anything else is an EINVALID
// error naming the problem. Elements are sub-slices of body, not checked here: an odd element
// is ParseEvent's business, because one odd event must never fail its batch.
func SplitBatch(body []byte) (elems []json.RawMessage, ping bool, err error) {
	if elems, err = source.SplitArray(body, "SendGrid events"); err != nil {
		return nil, false, err
	}
	if len(elems) == 0 {
		return nil, true, nil
	}
	return elems, false, nil
}

// ParseEvent parses one element tolerantly: it never panics and always returns an EventID
// (sg_event_id, or a hash of the element), so an odd element is stored once and deduplicated
// when SendGrid posts it again.
func ParseEvent(elem json.RawMessage) (ev source.Event) {
	ev.Body = elem
	ev.Finish(parseInto(&ev, source.TrimSpace(elem)))
	return ev
}

// parseInto fills ev from the element e and returns what is odd about it.
func parseInto(ev *source.Event, e []byte) []string {
	if problem := source.NotAnObject(e); problem != "" {
		return []string{problem}
	}
	var f source.Fields
	if !f.Read(e, field) {
		return []string{source.InvalidElement}
	}
	ev.Body = e
	problems := f.Fill(ev, "event")
	ev.CampaignID = source.FirstText(f.CampaignID) // category: a string or an array; the first is the campaign
	ev.Wrapper = wrapper(ev.Type)
	return problems
}

// field says where a member of an event goes among the fields the store indexes.
func field(f *source.Fields, name []byte) *[]byte {
	switch string(name) {
	case "event":
		return &f.Type
	case "sg_event_id":
		return &f.EventID
	case "timestamp":
		return &f.Timestamp
	case "email":
		return &f.Recipient
	case "sg_message_id":
		return &f.MessageID
	case "category":
		return &f.CampaignID
	case "template_id":
		return &f.TemplateID
	case "sg_template_id":
		return &f.TemplateAlt
	}
	return nil
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
