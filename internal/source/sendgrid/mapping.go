package sendgrid

import (
	"fmt"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
)

// IntegrationVersion is sent as context.integration.version; bump it when the mapping changes
// in a way a Segment user could notice.
const IntegrationVersion = "1.0.0"

// MessageID returns the deterministic Segment messageId of a SendGrid event: "sg-" and the
// tenant-namespaced hash of its sg_event_id (source.MessageID).
func MessageID(tenantID, eventID string) string { return source.MessageID("sg-", tenantID, eventID) }

// SegmentEventName maps a SendGrid event type to the Segment Email-spec name, as SparkPost's
// types are mapped; ok=false means "stored, not sent". Segment's spec has no resubscribe event:
// group_resubscribe is sent as "Resubscribed", Unsubscribed's counterpart, with the same list_id.
func SegmentEventName(sendgridType string) (name string, ok bool) {
	switch sendgridType {
	case "processed":
		return "Email Sent", true
	case "deferred":
		return "Email Deferred", true
	case "delivered":
		return "Email Delivered", true
	case "bounce":
		return "Email Bounced", true
	case "dropped":
		return "Email Dropped", true
	case "open":
		return "Email Opened", true
	case "click":
		return "Email Link Clicked", true
	case "spamreport":
		return "Email Marked as Spam", true
	case "unsubscribe", "group_unsubscribe":
		return "Unsubscribed", true
	case "group_resubscribe":
		return "Resubscribed", true
	}
	return "", false
}

// Map builds the Segment track call for an event. reason explains every outcome but
// OutcomeSend in a few words.
func Map(tenantID string, ev source.Event, s domain.SourceSettings) (t delivery.SegmentMessage, out source.Outcome, reason string) {
	if ev.ParseError != "" {
		return t, source.OutcomeInvalid, "invalid event: " + ev.ParseError
	}
	name, ok := SegmentEventName(ev.Type)
	if !ok {
		return t, source.OutcomeNotSent, fmt.Sprintf("type %q is not sent to Segment", ev.Type)
	}
	if ok, reason := source.Allowed(s, ev.Type); !ok {
		return t, source.OutcomeNotSent, reason
	}
	// Sized for a SendGrid event (10–20 fields, plus unique args) and the spec keys.
	props, err := source.Properties(ev.Body, 32)
	if err != nil {
		return t, source.OutcomeInvalid, "invalid event: " + err.Error()
	}
	t = delivery.SegmentMessage{Type: "track", MessageID: MessageID(tenantID, ev.EventID), Event: name, Timestamp: ev.Timestamp}
	if ok, reason := source.Identify(&t, s, uniqueArgs(props, s.UserIDKeys), "unique args", ev.Recipient, "email"); !ok {
		return delivery.SegmentMessage{}, source.OutcomeSkipped, reason
	}
	t.Context = buildContext(ev.Type, strings.TrimSpace(ev.Recipient), props)
	setSpecProperties(props, ev)
	t.Properties = props
	if out, reason := source.Fit(&t, len(ev.Body)); out != source.OutcomeSend {
		return delivery.SegmentMessage{}, out, reason
	}
	return t, source.OutcomeSend, ""
}

// uniqueArgs gives the values of the user-id keys among an event's unique args. SendGrid puts
// unique args (custom_args) at the top level of the event; old integrations nest them under
// "unique_args", which is looked in when the top level has no value for a key.
func uniqueArgs(props map[string]any, keys []string) map[string]any {
	if len(keys) == 0 {
		keys = source.DefaultUserIDKeys
	}
	nested := source.ObjectField(props, "unique_args")
	args := make(map[string]any, len(keys))
	for _, k := range keys {
		if v := source.StringField(props, k); strings.TrimSpace(v) != "" {
			args[k] = v
		} else if v, ok := nested[k]; ok {
			args[k] = v
		}
	}
	return args
}

// isEngagement reports the types whose ip and useragent are the reader's. On delivery events
// ip is SendGrid's sending IP, which would mislocate the user.
func isEngagement(typ string) bool {
	switch typ {
	case "open", "click", "group_unsubscribe", "group_resubscribe":
		return true
	}
	return false
}

// setSpecProperties adds Segment's Email-spec keys; SendGrid's own fields stay as they are.
func setSpecProperties(props map[string]any, ev source.Event) {
	set := func(key, val string) { source.SetProperty(props, key, val) }
	set("email_id", ev.MessageID)
	// A Marketing Campaigns send names its campaign; otherwise the first category stands for it,
	// as in the event store's campaign filter.
	id, name := source.StringField(props, "marketing_campaign_id"), source.StringField(props, "marketing_campaign_name")
	if strings.TrimSpace(id) == "" {
		id = ev.CampaignID
	}
	if strings.TrimSpace(name) == "" {
		name = ev.CampaignID
	}
	set("campaign_id", id)
	set("campaign_name", name)
	switch ev.Type {
	case "click":
		set("link_url", source.StringField(props, "url"))
		// url_offset {"index": 0, "type": "html"} says which link of the message it was.
		if off := source.ObjectField(props, "url_offset"); off != nil {
			set("link_id", source.StringField(off, "index"))
		}
	case "unsubscribe", "group_unsubscribe", "group_resubscribe":
		set("list_id", source.StringField(props, "asm_group_id"))
	}
}

// buildContext fills Segment's context: the integration, the recipient's email as a trait,
// and for engagement events the reader's ip and user agent.
func buildContext(typ, email string, props map[string]any) map[string]any {
	ctx := source.Context(domain.ProviderSendGrid, IntegrationVersion, email)
	if !isEngagement(typ) {
		return ctx
	}
	if ip := strings.TrimSpace(source.StringField(props, "ip")); ip != "" {
		ctx["ip"] = ip
	}
	if ua := source.StringField(props, "useragent"); strings.TrimSpace(ua) != "" {
		ctx["userAgent"] = ua
	}
	return ctx
}
