package sparkpost

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
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
		if e.DeliveryStatus == domain.StatusSending {
			return domain.StatusPending
		}
		return e.DeliveryStatus
	}
	return e.Status
}

func eventClass(e *store.EmailEvent) string { return strings.TrimSuffix(e.Wrapper, "_event") }

// AppendEventJSON appends e as the Events API shows an event, plus `switchboard`. The body's
// members are copied in their order; `timestamp` becomes ISO-8601 (UTC), `event_id` is the
// stored one (a hash for events that came without), and `class` and `switchboard` are ours.
func AppendEventJSON(dst []byte, e *store.EmailEvent) []byte {
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
	// Stored bodies are valid JSON (the hook checks every batch), but not always objects (an odd
	// element such as [0] is stored whole, as invalid), and one broken row must not break a page
	// of ten thousand: check, then scan.
	ok := source.Kind(source.TrimSpace(e.Body)) == '{' && json.Valid(e.Body) && source.EachMember(e.Body, func(key, val []byte) bool {
		switch string(key) {
		case `"class"`, `"switchboard"`, `"timestamp"`, `"event_id"`:
			return true // written below
		case `"type"`:
			hasType = true
		}
		sep()
		dst = append(dst, key...)
		dst = append(dst, ':')
		dst = append(dst, val...)
		return true
	})
	if !ok {
		// Not a JSON object (an event stored as invalid): show it as text.
		dst = append(dst[:start], `{"raw":`...)
		dst = source.AppendString(dst, string(e.Body))
		first = false
	}
	if !hasType {
		sep()
		dst = append(dst, `"type":`...)
		dst = source.AppendString(dst, e.Type)
	}
	sep()
	dst = append(dst, `"class":`...)
	dst = source.AppendString(dst, eventClass(e))
	dst = append(dst, `,"event_id":`...)
	dst = source.AppendString(dst, e.EventID)
	dst = append(dst, `,"timestamp":"`...)
	dst = e.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `","switchboard":{"status":`...)
	dst = source.AppendString(dst, eventStatus(e))
	dst = append(dst, `,"message_id":`...)
	if e.SegmentMessageID == "" {
		dst = append(dst, "null"...)
	} else {
		dst = source.AppendString(dst, e.SegmentMessageID)
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
		dst = source.AppendString(dst, e.Reason)
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
	source.EachMember(e.Body, func(key, val []byte) bool {
		for _, i := range enc.byTop[string(key)] {
			enc.raw[i] = val
		}
		return true
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
				v = source.Member(v, c.sub)
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
	if !bytes.ContainsAny(b, ",\"\r\n") {
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
		return source.AppendUnquoted(dst, v)
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

// EventReader is what reading the event store needs of a store (package store's *DB is one):
// a page read in chunks, and an export that holds no connection while its callback runs.
type EventReader interface {
	ReadEmailEvents(ctx context.Context, f store.EventFilter, maxBytes int, c *store.EventChunk) (more bool, err error)
	ExportEmailEvents(ctx context.Context, f store.EventFilter, fn func(*store.EmailEvent) error) error
}

// WriteEventsCSV streams every event eq selects to w as CSV with a header row, newest first,
// in constant memory, and returns how many it wrote. The events are read a chunk at a time and
// written with no database connection held (store.ExportEmailEvents), so a slow w delays only
// this export; the first error of w ends it and is returned as w gave it. progress, when set,
// is told the running count every few thousand events.
func WriteEventsCSV(ctx context.Context, db EventReader, eq *EventQuery, w io.Writer, progress func(int)) (int, error) {
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

// A page is read from the store in chunks of at most these many rows and body bytes, so that
// neither memory nor a read transaction grows with per_page.
const (
	pageChunkRows  = 1000
	pageChunkBytes = 1 << 20
)

// WriteEventPage writes to w, as JSON array elements, the events of one page of f: up to
// f.Limit after f's cursor, and fewer when the next would take the page's events past pageBytes
// (a page holds at least one event, however large). It returns the cursor of the next page, or
// "" on the last. The store is read in chunks whose rows are closed before w sees them.
func WriteEventPage(ctx context.Context, db EventReader, f store.EventFilter, pageBytes int, w *bufio.Writer) (string, error) {
	perPage := f.Limit
	var chunk store.EventChunk
	var lastTime time.Time
	var lastID int64
	var elem []byte
	n, size := 0, 0
	for {
		f.Limit = min(perPage+1-n, pageChunkRows) // one past the page says whether another follows
		more, err := db.ReadEmailEvents(ctx, f, pageChunkBytes, &chunk)
		if err != nil {
			return "", err
		}
		for i := range chunk.Events {
			e := &chunk.Events[i]
			if n == perPage {
				return domain.Cursor{Time: lastTime, ID: strconv.FormatInt(lastID, 10)}.String(), nil
			}
			elem = elem[:0]
			if n > 0 {
				elem = append(elem, ',')
			}
			elem = AppendEventJSON(elem, e)
			if n > 0 && size+len(elem) > pageBytes {
				return domain.Cursor{Time: lastTime, ID: strconv.FormatInt(lastID, 10)}.String(), nil
			}
			if _, err := w.Write(elem); err != nil {
				return "", err
			}
			n, size = n+1, size+len(elem)
			lastTime, lastID = e.Time, e.ID
		}
		if !more || len(chunk.Events) == 0 {
			return "", nil
		}
		f.BeforeTime, f.BeforeID = lastTime, lastID
	}
}
