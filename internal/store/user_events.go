package store

import (
	"context"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// UserEvent is one event of a subscriber, from a track, page or screen call.
type UserEvent struct {
	ID            int64     `json:"id"`
	TenantID      string    `json:"-"`
	DestinationID string    `json:"destination_id"`
	DistinctID    string    `json:"distinct_id"`
	MessageID     string    `json:"message_id"`
	Type          string    `json:"type"`
	Name          string    `json:"name"`
	Properties    []byte    `json:"-"` // JSON object
	Timestamp     time.Time `json:"timestamp"`
	CreatedAt     time.Time `json:"received_at"`
}

const qPutUserEvent = `INSERT INTO user_events (tenant_id, destination_id, distinct_id, message_id, type, name, properties, ts, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant_id, destination_id, message_id) DO UPDATE SET distinct_id = excluded.distinct_id, type = excluded.type,
		name = excluded.name, properties = excluded.properties, ts = excluded.ts`

// PutUserEvent stores an event. An event from the same message
// of the same destination is updated in place (a replay with a changed prefix renames it), so
// applying a message twice keeps one event. It leaves e.ID unset: a RETURNING clause would
// cost a statement journal per event (see InsertInbound), and no caller needs the id.
func (t *Tx) PutUserEvent(e *UserEvent) error {
	_, err := t.exec(qPutUserEvent,
		e.TenantID, e.DestinationID, e.DistinctID, e.MessageID, e.Type, e.Name, e.Properties, toMillis(e.Timestamp), toMillis(e.CreatedAt))
	return err
}

// MoveUser re-assigns what belongs to distinct id from to distinct id into (an alias call):
// its events and its workflow deliveries that have not gone out yet.
func (t *Tx) MoveUser(tenantID, from, into string) error {
	if _, err := t.sql.Exec(`UPDATE user_events SET distinct_id = ? WHERE tenant_id = ? AND distinct_id = ?`, into, tenantID, from); err != nil {
		return err
	}
	// The payload names the recipient too (the sender reads it from there), so both move.
	if _, err := t.sql.Exec(`UPDATE delivery_payloads SET payload = CAST(json_set(CAST(payload AS TEXT), '$.distinct_id', ?1) AS BLOB)
		WHERE delivery_id IN (SELECT id FROM deliveries WHERE tenant_id = ?2 AND subject = ?3 AND target = ?4 AND status IN ('pending', 'dead'))`,
		into, tenantID, from, domain.TargetWorkflow); err != nil {
		return err
	}
	_, err := t.sql.Exec(`UPDATE deliveries SET subject = ?1 WHERE tenant_id = ?2 AND subject = ?3 AND target = ?4 AND status IN ('pending', 'dead')`,
		into, tenantID, from, domain.TargetWorkflow)
	return err
}

// UserEvents returns one page of a subscriber's events, newest first, and the total count. The
// page continues after the event (p.AfterTime, p.AfterID) in that order; AfterID is the event id
// in decimal ("" for the first page).
func (db *DB) UserEvents(ctx context.Context, tenantID, distinctID string, p Page, afterID int64) ([]*UserEvent, int, error) {
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_events WHERE tenant_id = ? AND distinct_id = ?`,
		tenantID, distinctID).Scan(&total); err != nil {
		return nil, 0, err
	}
	where, args := `tenant_id = ? AND distinct_id = ?`, []any{tenantID, distinctID}
	if afterID > 0 {
		where += ` AND (ts, id) < (?, ?)`
		args = append(args, toMillis(p.AfterTime), afterID)
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT id, destination_id, distinct_id, message_id, type, name, properties, ts, created_at
		FROM user_events WHERE `+where+` ORDER BY ts DESC, id DESC LIMIT ?`, append(args, p.Limit)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []*UserEvent{}
	for rows.Next() {
		e := UserEvent{TenantID: tenantID}
		var ts, created int64
		if err := rows.Scan(&e.ID, &e.DestinationID, &e.DistinctID, &e.MessageID, &e.Type, &e.Name, &e.Properties, &ts, &created); err != nil {
			return nil, 0, err
		}
		e.Timestamp, e.CreatedAt = fromMillis(ts), fromMillis(created)
		out = append(out, &e)
	}
	return out, total, rows.Err()
}
