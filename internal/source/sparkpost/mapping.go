package sparkpost

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
)

// IntegrationVersion is sent as context.integration.version; bump it when the mapping changes
// in a way a Segment user could notice.
const IntegrationVersion = "1.0.0"

// MessageID returns the deterministic Segment messageId of a SparkPost event: "sp-" and the
// tenant-namespaced hash of source.MessageID.
func MessageID(tenantID, eventID string) string { return source.MessageID("sp-", tenantID, eventID) }

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

// Map builds the Segment track call for an event. reason explains NotSent/Skipped in a few words.
func Map(tenantID string, ev source.Event, s domain.SourceSettings) (t delivery.SegmentMessage, out source.Outcome, reason string) {
	if ev.ParseError != "" {
		return t, source.OutcomeInvalid, "invalid event: " + ev.ParseError
	}
	name, ok := SegmentEventName(ev.Type, s.ForwardInitialOpens)
	if !ok {
		if isInitialOpen(ev.Type) {
			return t, source.OutcomeNotSent, "initial opens are not forwarded"
		}
		return t, source.OutcomeNotSent, fmt.Sprintf("type %q is not sent to Segment", ev.Type)
	}
	if ok, reason := source.Allowed(s, ev.Type); !ok {
		return t, source.OutcomeNotSent, reason
	}
	// Sized for a SparkPost event (25–45 fields) plus the spec keys: no rehash while reading.
	props, err := source.Properties(ev.Body, 48)
	if err != nil {
		return t, source.OutcomeInvalid, "invalid event: " + err.Error()
	}

	t = delivery.SegmentMessage{Type: "track", MessageID: MessageID(tenantID, ev.EventID), Event: name, Timestamp: ev.Timestamp}
	if ok, reason := source.Identify(&t, s, source.ObjectField(props, "rcpt_meta"), "rcpt_meta", ev.Recipient, "rcpt_to"); !ok {
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

// setSpecProperties adds Segment's Email-spec keys. SparkPost's own fields stay as they are,
// except campaign_id, which is both and is sent as the spec's string.
func setSpecProperties(props map[string]any, ev source.Event) {
	set := func(key, val string) { source.SetProperty(props, key, val) }
	set("email_id", ev.MessageID)
	set("email_subject", source.StringField(props, "subject"))
	set("campaign_id", ev.CampaignID)
	set("campaign_name", ev.CampaignID)
	switch ev.Type {
	case "click", "amp_click":
		set("link_url", source.StringField(props, "target_link_url"))
		// SparkPost's click events call it target_link_name; link_name is the name in SPEC.
		if id := source.StringField(props, "link_name"); strings.TrimSpace(id) != "" {
			set("link_id", id)
		} else {
			set("link_id", source.StringField(props, "target_link_name"))
		}
	case "list_unsubscribe", "link_unsubscribe":
		set("list_id", ev.CampaignID)
	}
}

// buildContext fills Segment's context. Only engagement events carry the reader's ip and
// user agent; on other types ip_address is a mail server's, which would mislocate the user.
func buildContext(typ, email string, props map[string]any) map[string]any {
	ctx := source.Context(domain.ProviderSparkPost, IntegrationVersion, email)
	if !isEngagement(typ) {
		return ctx
	}
	if ip := strings.TrimSpace(source.StringField(props, "ip_address")); ip != "" {
		ctx["ip"] = ip
	}
	if ua := source.StringField(props, "user_agent"); strings.TrimSpace(ua) != "" {
		ctx["userAgent"] = ua
	}
	if loc := location(source.ObjectField(props, "geo_ip")); len(loc) > 0 {
		ctx["location"] = loc
	}
	return ctx
}

// location maps SparkPost's geo_ip to Segment's context.location. Segment's spec has city,
// country, region, latitude and longitude (numbers) but no postal code, so zip/postal_code stay
// in properties.geo_ip only. Older payloads send latitude as a string; it is converted.
func location(g map[string]any) map[string]any {
	if g == nil {
		return nil
	}
	loc := make(map[string]any, 5)
	for _, k := range []string{"city", "country", "region"} {
		if s := strings.TrimSpace(source.StringField(g, k)); s != "" {
			loc[k] = s
		}
	}
	for _, k := range []string{"latitude", "longitude"} {
		if f, ok := finiteFloat(source.StringField(g, k)); ok {
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
