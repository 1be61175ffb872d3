// Package sparkpost is SparkPost's side of direction A: it splits a webhook batch into its
// elements, parses each element tolerantly, maps it to a Segment track call, renders stored
// events the way SparkPost's Events API shows them, and back-fills from that API. It plugs
// into the provider-neutral pipeline of package source as the "sparkpost" Provider.
package sparkpost

import (
	"encoding/json"
	"fmt"

	"github.com/switchboard-hub/switchboard/internal/source"
)

// SplitBatch splits a SparkPost webhook body into its elements. Accepts a JSON array of
// objects. `[]`, `{}`, `[{"msys":{}}]` are pings (return nil, nil events, ping=true).
// Returns an error (with a human message naming the problem) when the body is not valid JSON
// or not an array (an object other than `{}` is an error). Elements are returned as raw bytes, unparsed.
//
// Errors are *domain.Error with code EINVALID, so the hook answers 400 with the message.
// Elements are sub-slices of body, not checked here: an odd element is ParseEvent's
// business, because one odd event must never fail its batch.
func SplitBatch(body []byte) (elems []json.RawMessage, ping bool, err error) {
	if b := source.TrimSpace(body); source.Kind(b) == '{' && json.Valid(b) && len(source.TrimSpace(b[1:len(b)-1])) == 0 {
		return nil, true, nil // {}
	}
	if elems, err = source.SplitArray(body, "SparkPost events"); err != nil {
		return nil, false, err
	}
	if isPingArray(elems) {
		return nil, true, nil
	}
	return elems, false, nil
}

// isPingArray reports whether every element is SparkPost's validation element {"msys":{}}.
// An empty array is a ping too. Real batches fail on the first element, so this stays cheap.
func isPingArray(elems []json.RawMessage) bool {
	for _, e := range elems {
		var outer map[string]json.RawMessage
		if json.Unmarshal(e, &outer) != nil || len(outer) != 1 {
			return false
		}
		msys, ok := outer["msys"]
		if !ok {
			return false
		}
		var inner map[string]json.RawMessage
		if json.Unmarshal(msys, &inner) != nil || inner == nil || len(inner) != 0 {
			return false
		}
	}
	return true
}

// field says where a member of an event object goes among the fields the store indexes.
func field(f *source.Fields, name []byte) *[]byte {
	switch string(name) {
	case "type":
		return &f.Type
	case "event_id":
		return &f.EventID
	case "timestamp":
		return &f.Timestamp
	case "rcpt_to":
		return &f.Recipient
	case "message_id":
		return &f.MessageID
	case "campaign_id":
		return &f.CampaignID
	case "template_id":
		return &f.TemplateID
	case "transmission_id":
		return &f.TransmissionID
	case "subaccount_id":
		return &f.SubaccountID
	case "bounce_class":
		return &f.BounceClass
	}
	return nil
}

// ParseEvent parses one batch element tolerantly: it never panics and always returns an
// EventID, so even an odd element can be stored once and deduplicated when SparkPost re-sends
// its batch.
func ParseEvent(elem json.RawMessage) (ev source.Event) {
	ev.Body = elem
	ev.Finish(parseInto(&ev, source.TrimSpace(elem)))
	return ev
}

// parseInto fills ev from the element e and returns what is odd about it.
func parseInto(ev *source.Event, e []byte) (problems []string) {
	wrapper, inner, problem := unwrap(e)
	if problem != "" {
		problems = append(problems, problem)
	}
	if inner == nil {
		return problems
	}
	ev.Wrapper = wrapper
	if source.Kind(inner) != '{' {
		return append(problems, fmt.Sprintf("%q is a JSON %s, not an object", wrapper, source.KindName(inner)))
	}
	var f source.Fields
	if !f.Read(inner, field) {
		return append(problems, source.InvalidElement) // stored whole, as it cannot be read
	}
	ev.Body = inner
	return append(problems, f.Fill(ev, "type")...)
}

// unwrap finds the wrapper key and inner event of an element {"msys":{"<wrapper>":{…}}} and
// names what is odd about it. inner is nil when there is nothing to parse; with several
// wrappers the first in document order is used, so the choice is stable.
func unwrap(e []byte) (wrapper string, inner []byte, problem string) {
	if problem := source.NotAnObject(e); problem != "" {
		return "", nil, problem
	}
	var msys []byte
	if !source.EachMember(e, func(key, val []byte) bool {
		if source.KeyText(key) == "msys" {
			msys = val
		}
		return true
	}) {
		return "", nil, source.InvalidElement
	}
	if msys == nil || string(msys) == "null" {
		return "", nil, `element has no "msys"`
	}
	if source.Kind(msys) != '{' {
		return "", nil, fmt.Sprintf(`"msys" is a JSON %s, not an object`, source.KindName(msys))
	}
	n := 0
	source.EachMember(msys, func(key, val []byte) bool {
		if n == 0 {
			wrapper, inner = source.KeyText(key), val
		}
		n++
		return true
	})
	switch {
	case n == 0:
		return "", nil, `"msys" is empty (a ping element inside a batch of events)`
	case n > 1:
		problem = fmt.Sprintf(`"msys" has %d keys, expected 1; the first, %q, is used`, n, wrapper)
	}
	return wrapper, inner, problem
}
