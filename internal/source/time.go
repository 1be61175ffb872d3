package source

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Unix seconds that time.Time can still write as RFC 3339 (years 1 to 9999): anything outside
// would make the Segment message impossible to encode, so it is a parse error instead.
const (
	minUnix = -62135596800
	maxUnix = 253402300799
)

// isoLayouts are the ISO-8601 forms accepted besides Unix seconds. Go accepts a fractional
// second after the seconds field even when the layout has none, so each covers both forms.
var isoLayouts = []string{
	time.RFC3339,                // 2019-06-16T19:02:09.373Z, 2019-06-16T19:02:09+02:00
	"2006-01-02T15:04:05Z0700",  // +0200
	"2006-01-02T15:04:05",       // no zone: UTC, as SparkPost's APIs are
	"2006-01-02 15:04:05Z07:00", // a space instead of the T
	"2006-01-02 15:04:05",
}

// ParseTimestamp reads a provider's timestamp: Unix seconds as a number or a string, possibly
// with a fractional part, or ISO-8601. Absent, null and "" give the zero time without error.
func ParseTimestamp(raw json.RawMessage) (time.Time, error) {
	r := TrimSpace(raw)
	switch Kind(r) {
	case 0, 'n':
		return time.Time{}, nil
	case '0':
		return parseUnix(string(r))
	case '"':
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return time.Time{}, fmt.Errorf("bad timestamp %s", r)
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return time.Time{}, nil
		}
		if looksNumeric(s) {
			return parseUnix(s)
		}
		for _, layout := range isoLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("bad timestamp %q: neither Unix seconds nor ISO-8601", s)
	}
	return time.Time{}, fmt.Errorf("bad timestamp %s: neither Unix seconds nor ISO-8601", domain.Truncate(string(r), 40))
}

// parseUnix reads decimal Unix seconds from their text, keeping the fraction exact to the
// nanosecond (a float64 would round it).
func parseUnix(s string) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("bad timestamp %q: not Unix seconds", domain.Truncate(s, 40))
	}
	if strings.ContainsAny(s, "eE") { // exponent form: rare, float precision is enough
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f < minUnix || f > maxUnix {
			return bad()
		}
		sec := math.Floor(f)
		return time.Unix(int64(sec), int64(math.Round((f-sec)*1e9))).UTC(), nil
	}
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	whole, frac, _ := strings.Cut(digits, ".")
	if whole == "" && frac == "" || !allDigits(whole) || !allDigits(frac) {
		return bad()
	}
	outOfRange := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("bad timestamp %q: out of range", domain.Truncate(s, 40))
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 12 { // beyond year 9999 whatever the digits; also keeps ParseInt from overflowing
		return outOfRange()
	}
	var sec int64
	if whole != "" {
		sec, _ = strconv.ParseInt(whole, 10, 64)
	}
	if len(frac) > 9 {
		frac = frac[:9]
	}
	var nsec int64
	if frac != "" {
		nsec, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	if neg {
		sec, nsec = -sec, -nsec
	}
	if sec < minUnix || sec > maxUnix {
		return outOfRange()
	}
	return time.Unix(sec, nsec).UTC(), nil
}

// looksNumeric tells Unix seconds in a string ("1460989507.123") from ISO-8601, which always
// has a letter, a colon or a space besides digits and dashes.
func looksNumeric(s string) bool {
	return strings.Trim(s, "0123456789.+-eE") == ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
