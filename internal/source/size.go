package source

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
)

// Fit applies SPEC's size rule to a track call built from an event body of bodyLen bytes:
// a call surely under MaxMessageBytes is sent as it is, a larger one loses its largest
// properties (listed in switchboard_truncated) until it fits, and one that cannot fit even
// without properties is not sent. It returns OutcomeSend or OutcomeNotSent with its reason.
func Fit(t *delivery.SegmentMessage, bodyLen int) (Outcome, string) {
	if SizeBound(t, bodyLen) <= MaxMessageBytes {
		return OutcomeSend, "" // surely small enough: skip encoding it just to measure
	}
	if size, err := fit(t); err != nil {
		return OutcomeNotSent, "cannot encode for Segment: " + err.Error()
	} else if size > MaxMessageBytes {
		return OutcomeNotSent, fmt.Sprintf("%d bytes even without properties; Segment's limit is %d", size, MaxMessageBytes)
	}
	return OutcomeSend, ""
}

// specKeys are the Segment Email-spec properties the providers set; the size rule never drops them
// before every other property is gone.
var specKeys = map[string]bool{
	"email_id": true, "email_subject": true, "campaign_id": true, "campaign_name": true,
	"link_url": true, "link_id": true, "list_id": true,
}

// longestTimestamp stands in for a zero Timestamp, which analytics-go replaces with the current
// local time: the longest RFC 3339 form keeps the measurement an upper bound.
var longestTimestamp = time.Date(2006, 1, 2, 15, 4, 5, 999999999, time.FixedZone("", -7*3600))

// EncodedSize returns the length of t as analytics-go will encode it (a zero Timestamp counted
// as the longest one, as analytics-go fills in the current time).
func EncodedSize(t *delivery.SegmentMessage) (int, error) {
	w := *t
	w.Type = "track"
	if w.Timestamp.IsZero() {
		w.Timestamp = longestTimestamp
	}
	b, err := json.Marshal(&w)
	return len(b), err
}

// SizeBound is an upper bound of EncodedSize that costs no encoding. Re-encoding JSON never
// makes a byte of it longer than 6 bytes (the worst is "<" or an invalid byte becoming
// \u003c or \ufffd), properties are the body plus copies of its strings under the spec keys,
// and everything else is the context, the ids and a fixed frame.
func SizeBound(t *delivery.SegmentMessage, bodyLen int) int {
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
func fit(t *delivery.SegmentMessage) (int, error) {
	size, err := EncodedSize(t)
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
		if size, err = EncodedSize(t); err != nil || size <= MaxMessageBytes {
			return size, err
		}
		// The estimate was optimistic (commas, an emptied map): measure again and go on.
		delete(t.Properties, TruncatedKey)
		if estimate, err = EncodedSize(t); err != nil {
			return 0, err
		}
	}
	t.Properties[TruncatedKey] = slices.Sorted(slices.Values(dropped))
	return EncodedSize(t)
}
