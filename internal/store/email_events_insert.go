package store

import (
	"database/sql"
	"strings"
	"time"
)

// insertGroup is how many rows one INSERT statement of the processor carries. One statement per
// event spent as much time crossing database/sql (bind, step, scan, close) as SQLite spent
// storing the row; grouped, the crossing is paid once per group. 32 rows of 18 values stay far
// below SQLite's limit on bound variables.
const insertGroup = 32

// groupInserter writes the processor's events and deliveries a group of rows per statement,
// with each statement prepared once per transaction and group size.
type groupInserter struct {
	tx         *sql.Tx
	events     map[int]*sql.Stmt
	deliveries map[int]*sql.Stmt
	payloads   map[int]*sql.Stmt
	args       []any
}

func newGroupInserter(tx *sql.Tx) *groupInserter {
	return &groupInserter{tx: tx, events: map[int]*sql.Stmt{}, deliveries: map[int]*sql.Stmt{}, payloads: map[int]*sql.Stmt{}}
}

func (g *groupInserter) close() {
	for _, st := range g.events {
		st.Close()
	}
	for _, st := range g.deliveries {
		st.Close()
	}
	for _, st := range g.payloads {
		st.Close()
	}
}

// stmt returns the statement of n rows from cache, preparing head + n copies of row + tail.
func (g *groupInserter) stmt(cache map[int]*sql.Stmt, n int, head, row, tail string) (*sql.Stmt, error) {
	if st, ok := cache[n]; ok {
		return st, nil
	}
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	b.WriteString(tail)
	st, err := g.tx.Prepare(b.String())
	if err != nil {
		return nil, err
	}
	cache[n] = st
	return st, nil
}

const (
	insertEventsHead = `INSERT INTO email_events (tenant_id, source_id, inbox_id, event_id, type, wrapper, ts, recipient, message_id,
		campaign_id, template_id, transmission_id, subaccount_id, bounce_class, body, status, reason, segment_message_id) VALUES `
	insertEventsRow  = `(?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), ?, ?, NULLIF(?, ''), NULLIF(?, ''))`
	insertEventsTail = ` ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING id, event_id`
)

// insertEvents stores group, events of p's batch, and sets the ID of each one that was new to
// the tenant; an event whose id the tenant has already (or that repeats one earlier in the
// group) keeps ID 0 and is stored once, as one statement per event would have done. It returns
// how many were new.
func (g *groupInserter) insertEvents(p *ProcessedBatch, group []*EmailEvent) (inserted int, err error) {
	st, err := g.stmt(g.events, len(group), insertEventsHead, insertEventsRow, insertEventsTail)
	if err != nil {
		return 0, err
	}
	b := p.Batch
	args := g.args[:0]
	for _, e := range group {
		ts := e.Time
		if ts.IsZero() {
			ts = b.ReceivedAt
		}
		e.ID = 0
		args = append(args, b.TenantID, b.SourceID, b.ID, e.EventID, e.Type, e.Wrapper, toMillis(ts), e.Recipient, e.MessageID,
			e.CampaignID, e.TemplateID, e.TransmissionID, e.SubaccountID, e.BounceClass, e.Body, e.Status, e.Reason, e.SegmentMessageID)
	}
	g.args = args
	rows, err := st.Query(args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var eventID string
		if err := rows.Scan(&id, &eventID); err != nil {
			return inserted, err
		}
		// SQLite inserts the rows in order, so of two with one id the first was stored.
		for _, e := range group {
			if e.ID == 0 && e.EventID == eventID {
				e.ID = id
				inserted++
				break
			}
		}
	}
	return inserted, rows.Err()
}

// insertDeliveries queues ds in one statement, and their payloads in another. A multi-row
// INSERT gives each row the largest rowid so far plus one, in order (no AUTOINCREMENT, no rowid
// given, nothing to conflict with on the single writer), so the rows' ids are the n ending at
// the statement's last one.
func (g *groupInserter) insertDeliveries(now time.Time, ds []NewDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	st, err := g.stmt(g.deliveries, len(ds), insertDeliveriesHead, insertDeliveryRow, "")
	if err != nil {
		return err
	}
	args := g.args[:0]
	for _, d := range ds {
		args = d.appendArgs(args, now)
	}
	g.args = args
	res, err := st.Exec(args...)
	if err != nil {
		return err
	}
	last, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if st, err = g.stmt(g.payloads, len(ds), insertPayloadsHead, insertPayloadRow, ""); err != nil {
		return err
	}
	args = g.args[:0]
	for i, d := range ds {
		args = append(args, last-int64(len(ds)-1-i), d.Payload)
	}
	g.args = args
	_, err = st.Exec(args...)
	return err
}
