package domain

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// invisible reports format characters (Unicode category Cf: zero-width spaces and joiners, bidi
// embeddings, overrides and isolates, the BOM) and other characters that render as nothing:
// in a name they make one tenant look like another.
func invisible(r rune) bool {
	return unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' || r == '\u3164' || r == '\u115f' || r == '\u1160'
}

// CheckName validates a display name (of a tenant, source, destination or workflow) given as
// field, and returns it trimmed. A nil name is "required".
func CheckName(field string, name *string) (string, error) {
	if name == nil {
		return "", Errorf(EINVALID, "%s: is required", field)
	}
	n := strings.TrimSpace(*name)
	switch {
	case n == "":
		return "", Errorf(EINVALID, "%s: must not be empty", field)
	case utf8.RuneCountInString(n) > 200:
		return "", Errorf(EINVALID, "%s: must be at most 200 characters", field)
	case strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }):
		return "", Errorf(EINVALID, "%s: must not contain control characters", field)
	case strings.ContainsFunc(n, invisible):
		return "", Errorf(EINVALID, "%s: must not contain invisible or text-direction characters (zero-width, bidi overrides)", field)
	}
	return n, nil
}
