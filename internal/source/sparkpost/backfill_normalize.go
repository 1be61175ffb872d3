package sparkpost

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// wrapperTypes are SparkPost's event types by webhook wrapper key (msys.<wrapper>).
var wrapperTypes = map[string][]string{
	"message_event":     {"injection", "delivery", "bounce", "delay", "out_of_band", "policy_rejection", "spam_complaint", "sms_status"},
	"track_event":       {"open", "initial_open", "click", "amp_open", "amp_initial_open", "amp_click"},
	"gen_event":         {"generation_failure", "generation_rejection"},
	"unsubscribe_event": {"list_unsubscribe", "link_unsubscribe"},
	"relay_event":       {"relay_injection", "relay_rejection", "relay_delivery", "relay_tempfail", "relay_permfail"},
	"ab_test_event":     {"ab_test_completed", "ab_test_cancelled"},
}

// WrapperOf returns the webhook wrapper of an event type; types SparkPost may add later are
// message events, the class of most.
func WrapperOf(typ string) string {
	for w, types := range wrapperTypes {
		if slices.Contains(types, typ) {
			return w
		}
	}
	return "message_event"
}

// NormalizeEventsAPI turns one Events API result (a flat object, ISO-8601 timestamp) into the webhook
// element SparkPost would have posted: {"msys": {"<wrapper>": {…}}} with the timestamp in Unix
// seconds, as webhooks send it. Every other field is kept as it came (numbers to the digit). A
// result that is not an object is wrapped unchanged; the parser then stores it as invalid,
// exactly as a webhook's odd element.
func NormalizeEventsAPI(result json.RawMessage) []byte {
	var fields map[string]json.RawMessage
	if json.Unmarshal(result, &fields) != nil || fields == nil {
		return wrap("message_event", result)
	}
	var typ string
	json.Unmarshal(fields["type"], &typ)
	var ts string
	if json.Unmarshal(fields["timestamp"], &ts) == nil {
		// Webhooks carry whole seconds; a time with a fraction keeps its ISO form, which the
		// parser reads as well.
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil && t.Nanosecond() == 0 {
			fields["timestamp"] = json.RawMessage(strconv.Quote(strconv.FormatInt(t.Unix(), 10)))
		}
	}
	var obj bytes.Buffer
	enc := json.NewEncoder(&obj)
	enc.SetEscapeHTML(false) // keep "<" as "<": the stored body should read as SparkPost sent it
	if enc.Encode(fields) != nil {
		return wrap("message_event", result)
	}
	return wrap(WrapperOf(typ), bytes.TrimSuffix(obj.Bytes(), []byte("\n")))
}

func wrap(wrapper string, inner []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(inner) + len(wrapper) + 16)
	b.WriteString(`{"msys":{"`)
	b.WriteString(wrapper)
	b.WriteString(`":`)
	b.Write(inner)
	b.WriteString(`}}`)
	return b.Bytes()
}
