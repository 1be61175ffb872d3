package sparkpost

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
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
	if err := checkEventTypes(f.Types); err != nil {
		return nil, err
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
		loc, err := domain.LoadLocation(v)
		if err != nil {
			return nil, err
		}
		eq.Location = loc
	}
	var err error
	if v := q.Get("from"); v != "" {
		if f.From, err = domain.ParseTime("from", v, eq.Location); err != nil {
			return nil, err
		}
	}
	if v := q.Get("to"); v != "" {
		if f.To, err = domain.ParseTime("to", v, eq.Location); err != nil {
			return nil, err
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return nil, domain.Errorf(domain.EINVALID, "to: must be after from (from is inclusive, to exclusive)")
	}

	if !csv {
		if f.Limit, err = domain.ParseLimit("per_page", q.Get("per_page"), DefaultPerPage, MaxPerPage); err != nil {
			return nil, err
		}
		if v := q.Get("cursor"); v != "" {
			cur, err := domain.ParseCursor(v)
			if err != nil {
				return nil, err
			}
			if f.BeforeID, err = cur.IntID(); err != nil {
				return nil, err
			}
			f.BeforeTime = cur.Time
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

// checkEventTypes accepts the event types of every provider: the event store holds them all.
func checkEventTypes(types []string) error {
	var all []string
	for _, name := range source.Providers() {
		all = append(all, source.Lookup(name).Types()...)
	}
	for _, t := range types {
		if !slices.Contains(all, t) {
			slices.Sort(all)
			return domain.Errorf(domain.EINVALID, "events: %q is not an event type of %s (one of %s)", t, titles(), strings.Join(slices.Compact(all), ", "))
		}
	}
	return nil
}

// titles names the registered providers: "SendGrid or SparkPost".
func titles() string {
	var ts []string
	for _, name := range source.Providers() {
		ts = append(ts, source.Lookup(name).Title())
	}
	return strings.Join(ts, " or ")
}
