package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// This file renders stored events the way SparkPost's Events API shows them: one flat JSON
// object per event (its own fields, `type`, `class`, an ISO-8601 `timestamp`) plus Switchboard's
// `switchboard` object; and the same events as CSV cells. It reads each stored body with a small
// scanner instead of decoding it into a map: a page holds up to 10,000 events and an export
// millions.

// timeLayout is the Events API's timestamp format (millisecond precision, offset or Z).
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// sparkpostFields are the fields of SparkPost's events (Events API documentation and webhook
// samples), the columns a CSV export may ask for besides Switchboard's own.
var sparkpostFields = []string{
	"ab_test", "ab_test_id", "ab_test_version", "amp_enabled", "bounce_class", "campaign_id", "click_tracking", "customer_id",
	"delv_method", "device_token", "display_name", "dr_latency", "error_code", "event_description", "event_id", "fbtype",
	"friendly_from", "geo_ip", "initial_pixel", "injection_time", "ip_address", "ip_pool", "mailbox_provider",
	"mailbox_provider_region", "mailfrom", "message_id", "msg_from", "msg_size", "num_retries", "open_tracking", "origination",
	"outbound_tls", "queue_time", "raw_rcpt_to", "raw_reason", "rcpt_hash", "rcpt_meta", "rcpt_subs", "rcpt_tags", "rcpt_to",
	"rcpt_type", "reason", "recipient_domain", "recv_method", "relay_id", "remote_addr", "report_by", "report_to",
	"routing_domain", "scheduled_time", "sending_domain", "sending_ip", "sms_coding", "sms_dst", "sms_dst_npi", "sms_dst_ton",
	"sms_remoteids", "sms_segments", "sms_src", "sms_src_npi", "sms_src_ton", "sms_text", "stat_state", "stat_type",
	"subaccount_id", "subject", "target_link_name", "target_link_url", "template_id", "template_version", "timestamp",
	"transactional", "transmission_id", "type", "user_agent",
}

// switchboardFields are the CSV columns of the `switchboard` object, and class.
var switchboardFields = []string{"class", "switchboard.status", "switchboard.message_id", "switchboard.delivered_at", "switchboard.reason"}

// nestedFields are the objects whose keys a CSV column may name as "<object>.<key>".
var nestedFields = []string{"rcpt_meta", "geo_ip"}

// DefaultCSVFields are the columns of a CSV export that names none.
var DefaultCSVFields = []string{
	"timestamp", "type", "event_id", "rcpt_to", "message_id", "transmission_id", "campaign_id", "template_id",
	"subject", "bounce_class", "reason", "target_link_url", "switchboard.status",
}

// CSVFields lists the fields a CSV export can have as columns.
func CSVFields() []string {
	out := append(slices.Clone(sparkpostFields), switchboardFields...)
	slices.Sort(out)
	return out
}

func validCSVField(name string) bool {
	if slices.Contains(sparkpostFields, name) || slices.Contains(switchboardFields, name) {
		return true
	}
	obj, key, ok := strings.Cut(name, ".")
	return ok && key != "" && slices.Contains(nestedFields, obj)
}

// eventStatus is what `switchboard.status` says: the event's own status, or for a queued event
// its delivery's (sending shows as pending: it is not delivered yet).
func eventStatus(e *store.EmailEvent) string {
	if e.Status == store.EventQueued && e.DeliveryStatus != "" {
		if e.DeliveryStatus == store.StatusSending {
			return store.StatusPending
		}
		return e.DeliveryStatus
	}
	return e.Status
}

func eventClass(e *store.EmailEvent) string { return strings.TrimSuffix(e.Wrapper, "_event") }

// appendEventJSON appends e as the Events API shows an event, plus `switchboard`. The body's
// members are copied in their order; `timestamp` becomes ISO-8601 (UTC), `event_id` is the
// stored one (a hash for events that came without), and `class` and `switchboard` are ours.
func appendEventJSON(dst []byte, e *store.EmailEvent) []byte {
	start := len(dst)
	dst = append(dst, '{')
	var hasType bool
	first := true
	sep := func() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
	}
	// Stored bodies are valid JSON (the hook checks every batch), but one broken row must not
	// break a page of ten thousand: check, then scan.
	ok := json.Valid(e.Body) && eachMember(e.Body, func(key, val []byte) {
		switch string(key) {
		case `"class"`, `"switchboard"`, `"timestamp"`, `"event_id"`:
			return // written below
		case `"type"`:
			hasType = true
		}
		sep()
		dst = append(dst, key...)
		dst = append(dst, ':')
		dst = append(dst, val...)
	})
	if !ok {
		// Not a JSON object (an event stored as invalid): show it as text.
		dst = append(dst[:start], `{"raw":`...)
		dst = appendJSONString(dst, string(e.Body))
		first = false
	}
	if !hasType {
		sep()
		dst = append(dst, `"type":`...)
		dst = appendJSONString(dst, e.Type)
	}
	sep()
	dst = append(dst, `"class":`...)
	dst = appendJSONString(dst, eventClass(e))
	dst = append(dst, `,"event_id":`...)
	dst = appendJSONString(dst, e.EventID)
	dst = append(dst, `,"timestamp":"`...)
	dst = e.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `","switchboard":{"status":`...)
	dst = appendJSONString(dst, eventStatus(e))
	dst = append(dst, `,"message_id":`...)
	if e.SegmentMessageID == "" {
		dst = append(dst, "null"...)
	} else {
		dst = appendJSONString(dst, e.SegmentMessageID)
	}
	dst = append(dst, `,"delivered_at":`...)
	if e.DeliveredAt.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = e.DeliveredAt.UTC().AppendFormat(dst, timeLayout)
		dst = append(dst, '"')
	}
	if e.Reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = appendJSONString(dst, e.Reason)
	}
	return append(dst, "}}"...)
}

// csvColumn is one column of an export: a body field, a key of a body object, or one of ours.
type csvColumn struct {
	name string
	top  string // body member it reads ("" for ours)
	sub  string // key inside that member (rcpt_meta.user_id)
}

// csvEncoder writes events as CSV rows, reusing its buffers so that a row allocates nothing
// that outlives it.
type csvEncoder struct {
	w     *bufio.Writer
	loc   *time.Location
	cols  []csvColumn
	byTop map[string][]int // body member → the columns that read it
	raw   [][]byte         // per column: the raw JSON value found in this event's body
	cell  []byte
}

// ownColumns are the columns that come from the store rather than the event's body.
var ownColumns = []string{"class", "event_id", "timestamp", "switchboard.status", "switchboard.message_id",
	"switchboard.delivered_at", "switchboard.reason"}

func newCSVEncoder(w io.Writer, fields []string, loc *time.Location) *csvEncoder {
	enc := &csvEncoder{w: bufio.NewWriterSize(w, 64<<10), loc: loc, byTop: map[string][]int{}, raw: make([][]byte, len(fields))}
	for i, f := range fields {
		c := csvColumn{name: f}
		if !slices.Contains(ownColumns, f) {
			c.top, c.sub, _ = strings.Cut(f, ".")
			key := `"` + c.top + `"`
			enc.byTop[key] = append(enc.byTop[key], i)
		}
		enc.cols = append(enc.cols, c)
	}
	return enc
}

func (enc *csvEncoder) header() {
	for i, c := range enc.cols {
		if i > 0 {
			enc.w.WriteByte(',')
		}
		enc.writeCell([]byte(c.name))
	}
	enc.w.WriteByte('\n')
}

func (enc *csvEncoder) event(e *store.EmailEvent) {
	for i := range enc.raw {
		enc.raw[i] = nil
	}
	eachMember(e.Body, func(key, val []byte) {
		for _, i := range enc.byTop[string(key)] {
			enc.raw[i] = val
		}
	})
	for i, c := range enc.cols {
		if i > 0 {
			enc.w.WriteByte(',')
		}
		cell := enc.cell[:0]
		switch c.name {
		case "class":
			cell = append(cell, eventClass(e)...)
		case "event_id":
			cell = append(cell, e.EventID...)
		case "timestamp":
			cell = e.Time.In(enc.loc).AppendFormat(cell, timeLayout)
		case "switchboard.status":
			cell = append(cell, eventStatus(e)...)
		case "switchboard.message_id":
			cell = append(cell, e.SegmentMessageID...)
		case "switchboard.delivered_at":
			if !e.DeliveredAt.IsZero() {
				cell = e.DeliveredAt.In(enc.loc).AppendFormat(cell, timeLayout)
			}
		case "switchboard.reason":
			cell = append(cell, e.Reason...)
		default:
			v := enc.raw[i]
			if c.sub != "" && v != nil {
				v = member(v, c.sub)
			}
			if v == nil && c.name == "type" { // an event stored as invalid may lack it
				cell = append(cell, e.Type...)
			} else {
				cell = defuseFormula(appendCellValue(cell, v), v)
			}
		}
		enc.cell = cell
		enc.writeCell(cell)
	}
	enc.w.WriteByte('\n')
}

// writeCell writes one field, quoted (RFC 4180) when it holds a comma, quote or line break.
func (enc *csvEncoder) writeCell(b []byte) {
	if bytes.IndexAny(b, ",\"\r\n") < 0 {
		enc.w.Write(b)
		return
	}
	enc.w.WriteByte('"')
	for {
		i := bytes.IndexByte(b, '"')
		if i < 0 {
			break
		}
		enc.w.Write(b[:i+1])
		enc.w.WriteByte('"')
		b = b[i+1:]
	}
	enc.w.Write(b)
	enc.w.WriteByte('"')
}

// defuseFormula prefixes a cell that a spreadsheet would run as a formula (it begins with =, +,
// -, @, TAB or CR) with a single quote, as OWASP advises for CSV injection: values such as a
// click's user_agent or a bounce's reason come from outsiders. A JSON number (-5) keeps its sign.
func defuseFormula(cell, raw []byte) []byte {
	if len(cell) == 0 || !bytes.ContainsRune([]byte("=+-@\t\r"), rune(cell[0])) {
		return cell
	}
	if raw = bytes.TrimSpace(raw); len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return cell
	}
	cell = append(cell, 0)
	copy(cell[1:], cell)
	cell[0] = '\''
	return cell
}

// appendCellValue renders a raw JSON value as cell text: strings unquoted, null and absent
// values empty, numbers and booleans as written, objects and arrays as compact JSON.
func appendCellValue(dst, v []byte) []byte {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return dst
	}
	switch v[0] {
	case '"':
		return appendUnquoted(dst, v)
	case 'n':
		return dst
	case '{', '[':
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			return append(dst, b.Bytes()...)
		}
	}
	return append(dst, v...)
}

// WriteEventsCSV streams every event eq selects to w as CSV with a header row, newest first,
// in constant memory, and returns how many it wrote. The events are read a chunk at a time and
// written with no database connection held (store.ExportEmailEvents), so a slow w delays only
// this export; the first error of w ends it and is returned as w gave it. progress, when set,
// is told the running count every few thousand events.
func WriteEventsCSV(ctx context.Context, db *store.DB, eq *EventQuery, w io.Writer, progress func(int)) (int, error) {
	sw := &stickyWriter{w: w}
	enc := newCSVEncoder(sw, eq.Fields, eq.Location)
	enc.header()
	n := 0
	err := db.ExportEmailEvents(ctx, eq.Filter, func(e *store.EmailEvent) error {
		enc.event(e)
		n++
		if progress != nil && n%5000 == 0 {
			progress(n)
		}
		return sw.err
	})
	if ferr := enc.w.Flush(); err == nil {
		err = ferr
	}
	if progress != nil {
		progress(n)
	}
	return n, err
}

// stickyWriter remembers the first error of w, so that an export stops at a failed write
// instead of rendering the rest for nobody (bufio.Writer keeps the error but does not say).
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// eachMember calls fn with the raw key (quotes included) and raw value of each member of the
// JSON object b, in order, and reports whether b was an object it could read to the end. The
// stored bodies are valid JSON (the hook checks every batch), so this only finds the member
// boundaries; on anything else it stops and returns false.
func eachMember(b []byte, fn func(key, val []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for i < len(b) {
		if b[i] != '"' {
			return false
		}
		kend := skipString(b, i)
		if kend < 0 {
			return false
		}
		key := b[i:kend]
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		vend := skipValue(b, i)
		if vend < 0 {
			return false
		}
		fn(key, b[i:vend])
		i = skipSpace(b, vend)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
	return false
}

// member returns the raw value of the member name of the JSON object obj, or nil.
func member(obj []byte, name string) []byte {
	var found []byte
	eachMember(obj, func(key, val []byte) {
		if found == nil && len(key) == len(name)+2 && string(key[1:len(key)-1]) == name {
			found = val
		}
	})
	return found
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] (a quote), or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; ; j++ {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		escapes := 0 // a quote after an odd number of backslashes is part of the string
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			escapes++
		}
		if escapes%2 == 0 {
			return j + 1
		}
	}
}

// skipValue returns the index after the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				if j = skipString(b, j); j < 0 {
					return -1
				}
				j--
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
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// appendUnquoted appends the text of the JSON string literal s (quotes included).
func appendUnquoted(dst, s []byte) []byte {
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

// appendJSONString appends s as a JSON string literal; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
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
