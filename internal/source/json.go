package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"
)

// This file is the one JSON walker of the providers and the event store: it finds where the
// members of an object (or the elements of an array) begin and end without decoding them.
// encoding/json would scan every byte of an event twice per Unmarshal (validate, then decode),
// and three nested Unmarshals were most of the parse cost; a walk that only finds boundaries is
// several times cheaper, and a page of ten thousand stored events renders without a map each.
// Every index is bounds-checked, so invalid input yields false, never a panic.

// EachMember calls fn with the raw key (quotes included) and raw value of each member of the
// JSON object b, or with a nil key and each element of the array b, in order, until fn returns
// false. It reports whether b was an object or array it could read to its end (false also
// when fn stopped early). Values are sub-slices of b; surrounding JSON whitespace is allowed.
func EachMember(b []byte, fn func(key, val []byte) bool) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || (b[i] != '{' && b[i] != '[') {
		return false
	}
	isObject := b[i] == '{'
	closer := byte(']')
	if isObject {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return skipSpace(b, i+1) == len(b)
	}
	for i < len(b) {
		var key []byte
		if isObject {
			if b[i] != '"' {
				return false
			}
			end := endOfString(b, i)
			if end < 0 {
				return false
			}
			key = b[i:end]
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return false
			}
			i = skipSpace(b, i+1)
		}
		end := endOfValue(b, i)
		if end < 0 || !fn(key, b[i:end]) {
			return false
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case closer:
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
	return false
}

// Member returns the raw value of the member called name of the JSON object obj, or nil. Names
// match exactly (an escaped key never matches), as the fields Switchboard looks up have none.
func Member(obj []byte, name string) []byte {
	var found []byte
	EachMember(obj, func(key, val []byte) bool {
		if len(key) == len(name)+2 && string(key[1:len(key)-1]) == name {
			found = val
			return false
		}
		return true
	})
	return found
}

// KeyText returns a raw member key as a string; only keys with escapes or invalid UTF-8 (which
// encoding/json turns into U+FFFD) cost a decode.
func KeyText(raw []byte) string {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// ScalarText returns a JSON string's value or a JSON number's text, and "" for anything else,
// because providers send ids and classes either way ("subaccount_id": 101 or "101").
func ScalarText(raw []byte) string {
	r := TrimSpace(raw)
	switch Kind(r) {
	case '"':
		if len(r) >= 2 && bytes.IndexByte(r, '\\') < 0 && utf8.Valid(r) {
			return string(r[1 : len(r)-1]) // nothing to unescape: what encoding/json would return
		}
		var s string
		if json.Unmarshal(r, &s) == nil {
			return s
		}
	case '0':
		return string(r)
	}
	return ""
}

// TrimSpace trims JSON whitespace only; bytes.TrimSpace would also eat bytes JSON rejects.
func TrimSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// Kind classifies a trimmed JSON value by its first byte: '{', '[', '"', '0' (number),
// 't', 'f', 'n', or 0 when empty.
func Kind(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	switch c := b[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		return '0'
	default:
		return c
	}
}

// KindName names a JSON value's kind for error messages a sender's admin can act on.
func KindName(b []byte) string {
	switch Kind(b) {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case 0:
		return "nothing"
	}
	return "value"
}

// HashID is the event id of an event that carries none (sms_status, odd elements): identical
// events hash identically, so a re-sent batch does not store them twice.
func HashID(raw []byte) string {
	sum := sha256.Sum256(canonicalJSON(raw))
	return "h-" + hex.EncodeToString(sum[:])
}

// canonicalJSON re-encodes raw with sorted keys, no insignificant whitespace and numbers kept
// as written, so whitespace and key order do not change the hash. Invalid JSON is hashed as is.
func canonicalJSON(raw []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return raw
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index just past the string starting at b[i] (a quote), or -1 when
// it does not end.
func endOfString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++ // the escaped byte; \uXXXX's hex digits need no care
		case '"':
			return j + 1
		}
	}
	return -1
}

// endOfValue returns the index just past the value starting at b[i], or -1 when there is none.
func endOfValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := endOfString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i // number, true, false, null
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// AppendUnquoted appends the text of the JSON string literal s (quotes included), for a CSV cell.
func AppendUnquoted(dst, s []byte) []byte {
	s = s[1 : len(s)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			dst = append(dst, c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n := decodeU(s[i+1:])
			if n == 0 {
				dst = append(dst, '\\', 'u')
				continue
			}
			i += n
			if r >= 0xD800 && r < 0xDC00 { // a surrogate pair's first half
				if i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if r2, n2 := decodeU(s[i+3:]); n2 > 0 && r2 >= 0xDC00 && r2 < 0xE000 {
						r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
						i += 2 + n2
					}
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // \" \\ \/
			dst = append(dst, s[i])
		}
	}
	return dst
}

// decodeU reads the four hex digits of a \u escape; n is 0 when they are not there.
func decodeU(s []byte) (r rune, n int) {
	if len(s) < 4 {
		return 0, 0
	}
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0
		}
	}
	return r, 4
}

// AppendString appends s as a JSON string literal, escaping as little as JSON needs (no HTML
// escapes); invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
