package server

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // timezone= must work on hosts without /usr/share/zoneinfo (minimal containers)
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// Paging of email-events, as SparkPost's Events API pages.
const (
	DefaultPerPage = 1000
	MaxPerPage     = 10000
	// MaxPageBytes caps the results of one page: a page of large events ends early, with
	// links.next, rather than build an answer of 10,000 of them in memory.
	MaxPageBytes = 8 << 20
	// maxListValues bounds one comma-separated filter (SparkPost's 4,096-byte URI limit allows
	// a few hundred; this is well past it).
	maxListValues = 1000
)

// EventQuery is a parsed email-events search: the store filter and how to show what it finds.
type EventQuery struct {
	Filter   store.EventFilter
	Location *time.Location // for local from/to and for the times in CSV cells
	Fields   []string       // CSV columns, in order
}

// eventListParams are the list filters, by parameter name (SPEC §5.5; message_ids and
// transmission_ids are the Events API's own names for messages and transmissions).
var eventListParams = map[string]func(f *store.EventFilter) *[]string{
	"events":           func(f *store.EventFilter) *[]string { return &f.Types },
	"recipients":       func(f *store.EventFilter) *[]string { return &f.Recipients },
	"campaigns":        func(f *store.EventFilter) *[]string { return &f.Campaigns },
	"templates":        func(f *store.EventFilter) *[]string { return &f.Templates },
	"transmissions":    func(f *store.EventFilter) *[]string { return &f.Transmissions },
	"transmission_ids": func(f *store.EventFilter) *[]string { return &f.Transmissions },
	"messages":         func(f *store.EventFilter) *[]string { return &f.Messages },
	"message_ids":      func(f *store.EventFilter) *[]string { return &f.Messages },
	"subaccounts":      func(f *store.EventFilter) *[]string { return &f.Subaccounts },
	"bounce_classes":   func(f *store.EventFilter) *[]string { return &f.BounceClasses },
	"event_ids":        func(f *store.EventFilter) *[]string { return &f.EventIDs },
}

// eventParams lists every parameter of email-events and of its CSV twin, for the error that
// names an unknown one.
func eventParams(csv bool) []string {
	names := []string{"from", "to", "timezone", "delimiter"}
	for k := range eventListParams {
		names = append(names, k)
	}
	if csv {
		names = append(names, "fields")
	} else {
		names = append(names, "per_page", "cursor")
	}
	slices.Sort(names)
	return names
}

// ParseEventQuery reads the query parameters of GET …/email-events (csv false) or
// …/email-events.csv (csv true). Every problem is an EINVALID error that names the parameter.
// The tenant is left for the caller to set.
func ParseEventQuery(q url.Values, csv bool) (*EventQuery, error) {
	known := eventParams(csv)
	for k := range q {
		if !slices.Contains(known, k) {
			if csv && (k == "per_page" || k == "cursor") {
				return nil, domain.Errorf(domain.EINVALID, "%s: the CSV export has no pages; it streams every matching event", k)
			}
			return nil, domain.Errorf(domain.EINVALID, "%s: unknown parameter (known: %s)", k, strings.Join(known, ", "))
		}
	}
	eq := &EventQuery{Location: time.UTC}
	f := &eq.Filter
	f.Limit = DefaultPerPage

	delim := ","
	if v := q.Get("delimiter"); v != "" {
		r, size := utf8.DecodeRuneInString(v)
		if size != len(v) || r == utf8.RuneError || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsSpace(r) {
			return nil, domain.Errorf(domain.EINVALID, "delimiter: must be one character that is not a letter, digit or space")
		}
		delim = v
	}
	for name, field := range eventListParams {
		vals, err := splitParam(q, name, delim)
		if err != nil {
			return nil, err
		}
		dst := field(f)
		*dst = append(*dst, vals...)
	}
	for _, t := range f.Types {
		if !slices.Contains(sparkpostTypes, t) {
			return nil, domain.Errorf(domain.EINVALID, "events: %q is not a SparkPost event type (one of %s)", t, strings.Join(sparkpostTypes, ", "))
		}
	}
	for _, b := range f.BounceClasses {
		if n, err := strconv.Atoi(b); err != nil || n < 1 || n > 100 {
			return nil, domain.Errorf(domain.EINVALID, "bounce_classes: %q is not a bounce classification code (a number from 1 to 100)", b)
		}
	}
	for _, s := range f.Subaccounts {
		if n, err := strconv.ParseUint(s, 10, 63); err != nil || n > 1<<53 {
			return nil, domain.Errorf(domain.EINVALID, "subaccounts: %q is not a subaccount id (a whole number)", s)
		}
	}

	if v := q.Get("timezone"); v != "" {
		loc, err := loadLocation(v)
		if err != nil {
			return nil, err
		}
		eq.Location = loc
	}
	var err error
	if v := q.Get("from"); v != "" {
		if f.From, err = ParseTime("from", v, eq.Location); err != nil {
			return nil, err
		}
	}
	if v := q.Get("to"); v != "" {
		if f.To, err = ParseTime("to", v, eq.Location); err != nil {
			return nil, err
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return nil, domain.Errorf(domain.EINVALID, "to: must be after from (from is inclusive, to exclusive)")
	}

	if !csv {
		if v := q.Get("per_page"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxPerPage {
				return nil, domain.Errorf(domain.EINVALID, "per_page: must be a whole number from 1 to %d", MaxPerPage)
			}
			f.Limit = n
		}
		if v := q.Get("cursor"); v != "" {
			t, id, ok := decodeEventCursor(v)
			if !ok {
				return nil, domain.Errorf(domain.EINVALID, "cursor: not a cursor this server issued; use links.next as given")
			}
			f.BeforeTime, f.BeforeID = t, id
		}
		return eq, nil
	}
	fields, err := splitParam(q, "fields", ",")
	if err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		fields = DefaultCSVFields
	}
	for _, name := range fields {
		if !validCSVField(name) {
			return nil, domain.Errorf(domain.EINVALID, "fields: %q is not a field; valid fields are %s, and rcpt_meta.<key> or geo_ip.<key> for one key of those objects",
				name, strings.Join(CSVFields(), ", "))
		}
	}
	eq.Fields = fields
	return eq, nil
}

// splitParam reads a list parameter: comma- (or delimiter-) separated, repeatable, blanks dropped.
func splitParam(q url.Values, name, delim string) ([]string, error) {
	var out []string
	for _, v := range q[name] {
		for _, p := range strings.Split(v, delim) {
			if p = strings.TrimSpace(p); p != "" {
				if strings.ContainsFunc(p, unicode.IsControl) || !utf8.ValidString(p) {
					return nil, domain.Errorf(domain.EINVALID, "%s: values must be text without control characters", name)
				}
				out = append(out, p)
			}
		}
	}
	if len(out) > maxListValues {
		return nil, domain.Errorf(domain.EINVALID, "%s: at most %d values", name, maxListValues)
	}
	return out, nil
}

// loadLocation reads an IANA time zone name (Europe/Berlin, America/New_York, UTC).
func loadLocation(name string) (*time.Location, error) {
	if name != "Local" && len(name) <= 64 {
		if loc, err := time.LoadLocation(name); err == nil {
			return loc, nil
		}
	}
	return nil, domain.Errorf(domain.EINVALID, "timezone: %q is not an IANA time zone name such as Europe/Berlin or America/New_York", name)
}

// Time layouts accepted for from and to. Those without an offset are local times in the
// query's timezone (UTC unless given), as SparkPost reads them.
var (
	zonedLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z07:00"}
	localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}
)

// ParseTime reads an ISO-8601 time for the named parameter; a time without an offset is read in
// loc. A local time that a daylight-saving change skips is read with the offset before the change.
func ParseTime(name, v string, loc *time.Location) (time.Time, error) {
	for _, layout := range zonedLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, domain.Errorf(domain.EINVALID,
		"%s: %q is not an ISO-8601 time such as 2024-05-01T00:00:00Z, or a local time such as 2024-05-01T00:00 read in timezone", name, v)
}

// eventCursor is the opaque cursor of email-events: the (time, id) of the last event returned.
type eventCursor struct {
	T  int64 `json:"t"`
	ID int64 `json:"id"`
}

func encodeEventCursor(t time.Time, id int64) string {
	b, _ := json.Marshal(eventCursor{T: t.UnixMilli(), ID: id})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeEventCursor(v string) (time.Time, int64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	var cur eventCursor
	if err != nil || json.Unmarshal(raw, &cur) != nil || cur.ID <= 0 {
		return time.Time{}, 0, false
	}
	return time.UnixMilli(cur.T).UTC(), cur.ID, true
}

// parseTime reads an ISO-8601 time for the named parameter of another handler; one without an
// offset is UTC.
func parseTime(name, v string) (time.Time, error) { return ParseTime(name, v, time.UTC) }
