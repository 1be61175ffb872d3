package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// EventFilter selects stored email events (every provider's) with the filters of SparkPost's
// Events API (SPEC §5.5). A list matches any of its values; an empty list does not filter.
// Campaigns and Templates take SparkPost's `*` wildcard ("spring-*").
type EventFilter struct {
	TenantID      string
	Types         []string
	Recipients    []string
	Campaigns     []string
	Templates     []string
	Transmissions []string
	Messages      []string
	Subaccounts   []string
	BounceClasses []string
	EventIDs      []string
	From, To      time.Time // from inclusive, to exclusive; zero: open
	Limit         int       // events per page

	// BeforeTime and BeforeID are the (time, id) of the last event of the previous page: pages
	// run newest first by (ts, id), so events stored meanwhile never shift a later page.
	BeforeTime time.Time
	BeforeID   int64
}

// driver names the filter a query is driven by: the query reads that filter's index (INDEXED
// BY, so the plan never depends on what SQLite guesses about the data) and checks the other
// filters on the rows it finds. The order is how narrowly one value of each usually selects: an
// event id or a message names a handful of events, a recipient a few hundred, a campaign or a
// template thousands, a type a large share of everything.
type driver int

const (
	byTime driver = iota
	byTypes
	bySubaccounts
	byBounceClasses
	byTemplates
	byCampaigns
	byTransmissions
	byRecipients
	byMessages
	byEventIDs
)

func (f *EventFilter) driver() driver {
	switch {
	case len(f.EventIDs) > 0:
		return byEventIDs
	case len(f.Messages) > 0:
		return byMessages
	case len(f.Recipients) > 0:
		return byRecipients
	case len(f.Transmissions) > 0:
		return byTransmissions
	case len(f.Campaigns) > 0:
		return byCampaigns
	case len(f.Templates) > 0:
		return byTemplates
	case len(f.BounceClasses) > 0:
		return byBounceClasses
	case len(f.Subaccounts) > 0:
		return bySubaccounts
	case len(f.Types) > 0:
		return byTypes
	}
	return byTime
}

// indexes are the indexes each driver reads (migrations 0003 and 0005).
var indexes = map[driver]string{
	byTime: "email_events_ts", byTypes: "email_events_type", bySubaccounts: "email_events_subaccount",
	byBounceClasses: "email_events_bounce_class", byTemplates: "email_events_template", byCampaigns: "email_events_campaign",
	byTransmissions: "email_events_transmission", byRecipients: "email_events_recipient", byMessages: "email_events_message",
	byEventIDs: "email_events_event",
}

// where is a WHERE clause under construction.
type where struct {
	sb   strings.Builder
	args []any
}

func (w *where) add(cond string, args ...any) {
	if w.sb.Len() > 0 {
		w.sb.WriteString(" AND ")
	}
	w.sb.WriteString(cond)
	w.args = append(w.args, args...)
}

// in adds "col IN (…)", with `*` patterns (when wildcard) as GLOB alternatives.
func (w *where) in(ref string, vals []string, wildcard bool) {
	if len(vals) == 0 {
		return
	}
	var exact []any
	var globs []any
	for _, v := range vals {
		if wildcard && strings.Contains(v, "*") {
			globs = append(globs, globPattern(v))
		} else {
			exact = append(exact, v)
		}
	}
	var parts []string
	if len(exact) > 0 {
		parts = append(parts, ref+" IN ("+marks(len(exact))+")")
	}
	for range globs {
		parts = append(parts, ref+" GLOB ?")
	}
	cond := strings.Join(parts, " OR ")
	if len(parts) > 1 {
		cond = "(" + cond + ")"
	}
	w.add(cond, append(exact, globs...)...)
}

// globPattern turns a SparkPost wildcard value into a GLOB pattern: `*` stays the wildcard and
// GLOB's other special characters match themselves.
func globPattern(v string) string {
	r := strings.NewReplacer("[", "[[]", "?", "[?]")
	return r.Replace(v)
}

// conditions returns the WHERE clause of f (with the page cursor when cursor is true) and the
// index of its driving filter, which the query must read.
func (f *EventFilter) conditions(cursor bool) (index, cond string, args []any) {
	var w where
	d := f.driver()
	w.add(`e.tenant_id = ?`, f.TenantID)
	// The partial indexes leave out rows where their column is NULL; saying so lets SQLite read
	// them whatever the filter values look like (a GLOB pattern implies nothing to the planner).
	notNull := map[driver]string{byMessages: "e.message_id", byTransmissions: "e.transmission_id", byCampaigns: "e.campaign_id",
		byTemplates: "e.template_id", byBounceClasses: "e.bounce_class", bySubaccounts: "e.subaccount_id"}
	if col, ok := notNull[d]; ok {
		w.add(col + ` IS NOT NULL`)
	}
	w.in(`e.event_id`, f.EventIDs, false)
	w.in(`e.message_id`, f.Messages, false)
	w.in(`e.recipient`, f.Recipients, false)
	w.in(`e.transmission_id`, f.Transmissions, false)
	w.in(`e.campaign_id`, f.Campaigns, true)
	w.in(`e.template_id`, f.Templates, true)
	w.in(`e.bounce_class`, f.BounceClasses, false)
	w.in(`e.subaccount_id`, f.Subaccounts, false)
	w.in(`e.type`, f.Types, false)
	if !f.From.IsZero() {
		w.add(`e.ts >= ?`, toMillis(f.From))
	}
	if !f.To.IsZero() {
		w.add(`e.ts < ?`, toMillis(f.To))
	}
	if cursor && f.BeforeID > 0 {
		w.add(`(e.ts, e.id) < (?, ?)`, toMillis(f.BeforeTime), f.BeforeID)
	}
	return indexes[d], w.sb.String(), w.args
}

// pageQuery returns the statement reading one page of f: each event with its Segment
// delivery's status, newest first.
func (f *EventFilter) pageQuery() (string, []any) {
	index, cond, args := f.conditions(true)
	return `SELECT e.id, e.source_id, e.event_id, e.type, e.wrapper, e.ts, e.body, e.status,
			COALESCE(e.reason, ''), COALESCE(e.segment_message_id, ''), COALESCE(d.status, ''), COALESCE(d.delivered_at, 0)
		FROM email_events e INDEXED BY ` + index + ` LEFT JOIN deliveries d ON d.ref_id = e.id AND d.target = 'segment'
		WHERE ` + cond + ` ORDER BY e.ts DESC, e.id DESC LIMIT ?`, append(args, f.Limit)
}

// countQuery returns the statement counting f's events through its driving index.
func (f *EventFilter) countQuery() (string, []any) {
	index, cond, args := f.conditions(false)
	return `SELECT COUNT(*) FROM email_events e INDEXED BY ` + index + ` WHERE ` + cond, args
}

// EachEmailEvent calls fn for each event of one page of f (f.Limit events after f's cursor),
// newest first. The event and its Body are reused: fn must not keep them after it returns.
func (db *DB) EachEmailEvent(ctx context.Context, f EventFilter, fn func(*EmailEvent) error) error {
	q, args := f.pageQuery()
	rows, err := db.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	e := EmailEvent{TenantID: f.TenantID}
	var ts, delivered int64
	var body sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&e.ID, &e.SourceID, &e.EventID, &e.Type, &e.Wrapper, &ts, &body, &e.Status, &e.Reason,
			&e.SegmentMessageID, &e.DeliveryStatus, &delivered); err != nil {
			return err
		}
		e.Body, e.Time, e.DeliveredAt = body, fromMillis(ts), fromMillis(delivered)
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// EventChunk is a run of events read at once and held in memory, so that the read connection is
// back in the pool before any of them is written to a client: a client that stops reading must
// never hold one of the few read connections that hooks and the admin API need. Reuse one chunk
// for every read of a search; it keeps its buffers.
type EventChunk struct {
	Events []EmailEvent
	bodies []byte // the events' bodies, end to end
	ends   []int  // where each event's body ends in bodies
}

// Bytes is the size of the chunk's bodies.
func (c *EventChunk) Bytes() int { return len(c.bodies) }

// ReadEmailEvents reads into c the next events of f after f's cursor, newest first: at most
// f.Limit, and no more once their bodies reach maxBytes (at least one event; maxBytes <= 0 does
// not bound). The rows are closed when it returns. more reports that the read stopped at a
// bound, so events may follow the last one; false means f has no more.
func (db *DB) ReadEmailEvents(ctx context.Context, f EventFilter, maxBytes int, c *EventChunk) (more bool, err error) {
	c.Events, c.bodies, c.ends = c.Events[:0], c.bodies[:0], c.ends[:0]
	q, args := f.pageQuery()
	rows, err := db.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var ts, delivered int64
	var body sql.RawBytes
	for rows.Next() {
		c.Events = append(c.Events, EmailEvent{})
		e := &c.Events[len(c.Events)-1]
		*e = EmailEvent{TenantID: f.TenantID}
		if err := rows.Scan(&e.ID, &e.SourceID, &e.EventID, &e.Type, &e.Wrapper, &ts, &body, &e.Status, &e.Reason,
			&e.SegmentMessageID, &e.DeliveryStatus, &delivered); err != nil {
			return false, err
		}
		e.Time, e.DeliveredAt = fromMillis(ts), fromMillis(delivered)
		c.bodies = append(c.bodies, body...)
		c.ends = append(c.ends, len(c.bodies))
		if maxBytes > 0 && len(c.bodies) >= maxBytes {
			more = true
			break
		}
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	// bodies has stopped growing: the slices can point into it now.
	start := 0
	for i, end := range c.ends {
		c.Events[i].Body = c.bodies[start:end:end]
		start = end
	}
	return more || len(c.Events) == f.Limit, nil
}

// Export chunks: small enough that a chunk costs little memory and no read transaction lives
// long (the WAL can be checkpointed meanwhile), large enough that the query per chunk is cheap.
const (
	exportChunkRows  = 500
	exportChunkBytes = 512 << 10
)

// ExportEmailEvents calls fn for every event f selects (from f's cursor on; f.Limit is ignored),
// newest first. It reads a chunk at a time (ReadEmailEvents) and calls fn only with the chunk's
// rows closed, so memory stays flat whatever the count and a slow fn (a client that reads
// slowly, or not at all) holds no database connection. The event and its Body are valid until
// fn returns.
func (db *DB) ExportEmailEvents(ctx context.Context, f EventFilter, fn func(*EmailEvent) error) error {
	f.Limit = exportChunkRows
	var c EventChunk
	for {
		more, err := db.ReadEmailEvents(ctx, f, exportChunkBytes, &c)
		if err != nil {
			return err
		}
		for i := range c.Events {
			if err := fn(&c.Events[i]); err != nil {
				return err
			}
		}
		if !more || len(c.Events) == 0 {
			return nil
		}
		last := &c.Events[len(c.Events)-1]
		f.BeforeTime, f.BeforeID = last.Time, last.ID
	}
}

// EmailEvents returns one page of a tenant's events (f.Limit after f's cursor), newest first.
func (db *DB) EmailEvents(ctx context.Context, f EventFilter) ([]*EmailEvent, error) {
	out := []*EmailEvent{}
	err := db.EachEmailEvent(ctx, f, func(e *EmailEvent) error {
		c := *e
		c.Body = append([]byte(nil), e.Body...)
		out = append(out, &c)
		return nil
	})
	return out, err
}

// CountEmailEvents returns how many events f selects, ignoring its cursor. A search by time and
// type alone adds up the hourly counts (see email_event_counts.go); the others count through
// the index of their driving filter, which narrows them to few rows.
func (db *DB) CountEmailEvents(ctx context.Context, f EventFilter) (int, error) {
	if q, args, ok := f.rolledCount(); ok {
		var n int
		err := db.reader.QueryRowContext(ctx, q, args...).Scan(&n)
		return n, err
	}
	q, args := f.countQuery()
	var n int
	err := db.reader.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}
