package delivery

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
	"unicode/utf8"
)

// Payload encodes m as it is stored in a delivery: the JSON json.Marshal gives, except that a
// json.RawMessage property is copied as it is, not validated and compacted again, and that
// strings are not HTML-escaped. Both are what Segment's API reads the same way; analytics-go
// compacts and escapes when it sends (the stored message is read back a level down, raw). The
// providers keep an event's members raw (source.Properties), so re-encoding every property of
// every event through reflection was the larger half of the processor's cost per event.
//
// A RawMessage property must be valid JSON: a member of a body Split accepted.
func (m *SegmentMessage) Payload() ([]byte, error) {
	b := make([]byte, 0, 256+propertiesSize(m.Properties))
	b = append(b, `{"type":`...)
	b = appendString(b, m.Type)
	b = append(b, `,"messageId":`...)
	b = appendString(b, m.MessageID)
	if m.UserID != "" {
		b = append(b, `,"userId":`...)
		b = appendString(b, m.UserID)
	}
	if m.AnonymousID != "" {
		b = append(b, `,"anonymousId":`...)
		b = appendString(b, m.AnonymousID)
	}
	b = append(b, `,"event":`...)
	b = appendString(b, m.Event)
	b = append(b, `,"timestamp":"`...)
	if y := m.Timestamp.Year(); y < 0 || y > 9999 {
		return nil, &json.UnsupportedValueError{Str: "timestamp year outside [0,9999]"}
	}
	b = m.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(m.Properties) > 0 {
		b = append(b, `,"properties":`...)
		var err error
		if b, err = appendObject(b, m.Properties); err != nil {
			return nil, err
		}
	}
	if len(m.Context) > 0 {
		b = append(b, `,"context":`...)
		var err error
		if b, err = appendObject(b, m.Context); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendObject appends an object with sorted keys, as json.Marshal orders a map.
func appendObject(b []byte, m map[string]any) ([]byte, error) {
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, m[k]); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendValue appends one value: raw JSON as is, a string quoted, an object member by member,
// anything else as json.Marshal encodes it.
func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case json.RawMessage:
		if len(v) == 0 {
			return append(b, "null"...), nil // what json.Marshal writes for an empty RawMessage
		}
		return append(b, v...), nil
	case string:
		return appendString(b, v), nil
	case map[string]any:
		if v != nil {
			return appendObject(b, v)
		}
	}
	enc, err := json.Marshal(v)
	return append(b, enc...), err
}

// propertiesSize is the length of the raw and string properties, to size the buffer once.
func propertiesSize(props map[string]any) int {
	n := 0
	for k, v := range props {
		n += len(k) + 4
		switch v := v.(type) {
		case json.RawMessage:
			n += len(v)
		case string:
			n += len(v) + 2
		}
	}
	return n
}

// appendString appends s as a JSON string: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, as encoding/json does (without its HTML escaping).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
