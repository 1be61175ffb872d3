package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Inbound message statuses (GET …/destinations/{did}/messages).
const (
	InboundApplied   = "applied"   // applied to profiles, events and workflows (possibly with warnings)
	InboundDuplicate = "duplicate" // its messageId was seen before on this destination; nothing done
	InboundIgnored   = "ignored"   // it lacks what its type needs; Reason says what
)

// InboundMessage is one message Segment posted to a destination, as stored.
type InboundMessage struct {
	ID            int64
	TenantID      string
	DestinationID string
	MessageID     string
	Type          string
	DistinctID    string
	Body          []byte // nil for duplicates and erased messages
	Status        string
	Reason        string
	Warnings      []byte // JSON array, nil when none
	Erased        bool
	Timestamp     time.Time
	ReceivedAt    time.Time
}

const (
	qInsertInbound = `INSERT INTO dest_messages (tenant_id, destination_id, message_id, type, distinct_id, body, status, reason, warnings, ts, received_at)
		VALUES (?, ?, ?, ?, NULLIF(?, ''), ?, ?, NULLIF(?, ''), ?, NULLIF(?, 0), ?)
		ON CONFLICT (destination_id, message_id) WHERE status <> 'duplicate' DO NOTHING`
	qInsertDuplicate = `INSERT INTO dest_messages (tenant_id, destination_id, message_id, type, distinct_id, status, ts, received_at)
		VALUES (?, ?, ?, ?, NULLIF(?, ''), 'duplicate', NULLIF(?, 0), ?)`
	qSetInboundOutcome = `UPDATE dest_messages SET status = ?, reason = NULLIF(?, ''), warnings = ? WHERE id = ?`
)

// InsertInbound stores a message. When the destination already holds a non-duplicate row with
// the same message id, it stores a body-less 'duplicate' row instead and reports duplicate =
// true; m.ID is the new row either way.
//
// The statements have no RETURNING clause: SQLite runs RETURNING as a trigger, which makes the
// insert a multi-write statement that copies every page it touches into a statement journal
// first; in a group commit nearly every page is already dirty (with foreign keys on, 5,000-row
// transactions of this insert took 2.3 times as long with RETURNING as without). The row id
// comes from the result instead.
func (t *Tx) InsertInbound(m *InboundMessage) (duplicate bool, err error) {
	res, err := t.exec(qInsertInbound, m.TenantID, m.DestinationID, m.MessageID, m.Type, m.DistinctID, m.Body, m.Status, m.Reason,
		nullBytes(m.Warnings), toMillis(m.Timestamp), toMillis(m.ReceivedAt))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n == 1 {
		m.ID, err = res.LastInsertId()
		return false, err
	}
	m.Status, m.Reason, m.Body, m.Warnings = InboundDuplicate, "", nil, nil
	if res, err = t.exec(qInsertDuplicate, m.TenantID, m.DestinationID, m.MessageID, m.Type, m.DistinctID,
		toMillis(m.Timestamp), toMillis(m.ReceivedAt)); err == nil {
		m.ID, err = res.LastInsertId()
	}
	return true, err
}

// nullBytes stores an empty JSON value as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// SetInboundOutcome records what applying a stored message came to.
func (t *Tx) SetInboundOutcome(id int64, status, reason string, warnings []byte) error {
	_, err := t.exec(qSetInboundOutcome, status, reason, nullBytes(warnings), id)
	return err
}

// EraseInbound blanks the bodies of a tenant's messages about distinctID stored before the row
// beforeID (the delete call itself), so that no raw copy outlives the user's erasure.
func (t *Tx) EraseInbound(tenantID, distinctID string, beforeID int64) error {
	_, err := t.sql.Exec(`UPDATE dest_messages SET body = NULL, erased = 1 WHERE tenant_id = ? AND distinct_id = ? AND id < ? AND erased = 0`,
		tenantID, distinctID, beforeID)
	return err
}

// InboundFilter selects a destination's messages for the admin API and for replay.
type InboundFilter struct {
	DestinationID string
	Status        string   // "" for all
	Types         []string // empty for all
	DistinctID    string
	From, To      time.Time // received_at range: From inclusive, To exclusive
	Limit         int
	BeforeID      int64 // newest first: rows with id < BeforeID (0: from the newest)
	AfterID       int64 // oldest first (replay): rows with id > AfterID
}

const inboundColumns = `id, tenant_id, destination_id, message_id, type, COALESCE(distinct_id, ''), body, status, COALESCE(reason, ''),
	warnings, erased, COALESCE(ts, 0), received_at`

func scanInbound(row interface{ Scan(...any) error }) (*InboundMessage, error) {
	var m InboundMessage
	var warnings sql.NullString
	var ts, received int64
	if err := row.Scan(&m.ID, &m.TenantID, &m.DestinationID, &m.MessageID, &m.Type, &m.DistinctID, &m.Body, &m.Status, &m.Reason,
		&warnings, &m.Erased, &ts, &received); err != nil {
		return nil, err
	}
	if warnings.Valid {
		m.Warnings = []byte(warnings.String)
	}
	m.Timestamp, m.ReceivedAt = fromMillis(ts), fromMillis(received)
	return &m, nil
}

func inboundWhere(f InboundFilter) (string, []any) {
	where, args := `destination_id = ?`, []any{f.DestinationID}
	if f.Status != "" {
		where += ` AND status = ?`
		args = append(args, f.Status)
	}
	if len(f.Types) > 0 {
		where += ` AND type IN (?` + strings.Repeat(`, ?`, len(f.Types)-1) + `)`
		for _, t := range f.Types {
			args = append(args, t)
		}
	}
	if f.DistinctID != "" {
		where += ` AND distinct_id = ?`
		args = append(args, f.DistinctID)
	}
	if !f.From.IsZero() {
		where += ` AND received_at >= ?`
		args = append(args, toMillis(f.From))
	}
	if !f.To.IsZero() {
		where += ` AND received_at < ?`
		args = append(args, toMillis(f.To))
	}
	return where, args
}

// InboundMessages lists a destination's messages newest first, and the total matching count.
func (db *DB) InboundMessages(ctx context.Context, f InboundFilter) ([]*InboundMessage, int, error) {
	where, args := inboundWhere(f)
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM dest_messages WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	if f.BeforeID > 0 {
		where += ` AND id < ?`
		args = append(args, f.BeforeID)
	}
	out, err := db.queryInbound(ctx, `SELECT `+inboundColumns+` FROM dest_messages WHERE `+where+` ORDER BY id DESC LIMIT ?`, append(args, f.Limit)...)
	return out, total, err
}

// InboundForReplay returns up to f.Limit stored (not duplicate, not erased) messages after
// f.AfterID, in the order they arrived.
func (db *DB) InboundForReplay(ctx context.Context, f InboundFilter) ([]*InboundMessage, error) {
	where, args := inboundWhere(f)
	return db.queryInbound(ctx, `SELECT `+inboundColumns+` FROM dest_messages WHERE `+where+
		` AND id > ? AND status <> 'duplicate' AND body IS NOT NULL ORDER BY id LIMIT ?`, append(args, f.AfterID, f.Limit)...)
}

func (db *DB) queryInbound(ctx context.Context, query string, args ...any) ([]*InboundMessage, error) {
	rows, err := db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*InboundMessage{}
	for rows.Next() {
		m, err := scanInbound(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// PruneInbound deletes up to limit stored messages older than their tenant's retention
// (tenants.retention_days, the event-store retention of SPEC §5.5) and returns how many it
// deleted; callers repeat until it returns less than limit, so no write holds the writer long.
func (db *DB) PruneInbound(ctx context.Context, now time.Time, limit int) (int64, error) {
	var n int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM dest_messages WHERE id IN (SELECT m.id FROM tenants t
			JOIN dest_messages m ON m.tenant_id = t.id AND m.received_at < ? - t.retention_days * 86400000 LIMIT ?)`,
			toMillis(now), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
