package source

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// This file walks the top level of JSON that json.Valid has already accepted. encoding/json
// would scan every byte of an event twice per Unmarshal (validate, then decode) and three
// nested Unmarshals were most of the parse cost; a walk that only finds where members begin
// and end is several times cheaper. Every index is bounds-checked all the same, so invalid
// input yields wrong slices, never a panic.

// eachMember calls fn with the raw key (quotes included) and raw value of each member of the
// object b, or with a nil key and each element of the array b, until fn returns false.
// b must be a valid, whitespace-trimmed JSON object or array.
func eachMember(b []byte, fn func(key, val []byte) bool) {
	if len(b) < 2 {
		return
	}
	isObject := b[0] == '{'
	i := 1
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] == '}' || b[i] == ']' {
			return
		}
		var key []byte
		if isObject {
			end := endOfString(b, i)
			key = b[i:end]
			i = skipSpace(b, end)
			if i < len(b) && b[i] == ':' {
				i++
			}
			i = skipSpace(b, i)
		}
		end := endOfValue(b, i)
		if end <= i || !fn(key, b[i:end]) {
			return
		}
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

// keyText returns a raw member key as a string; only keys with escapes or invalid UTF-8 (which
// encoding/json turns into U+FFFD) cost a decode.
func keyText(raw []byte) string {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index just past the string starting at b[i] (a quote).
func endOfString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++ // the escaped byte; \uXXXX's hex digits need no care
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// endOfValue returns the index just past the value starting at b[i].
func endOfValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = endOfString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i // number, true, false, null
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}
