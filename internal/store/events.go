package store

import (
	"context"
	"strings"
	"time"
)

// EventFilter selects stored SparkPost events (SPEC §5.5; the basic filters).
type EventFilter struct {
	TenantID   string
	Types      []string
	Recipients []string
	From, To   time.Time // from inclusive, to exclusive; zero: open
	Limit      int
	// Before is the (time, id) of the last event of the previous page; newest first.
	BeforeTime time.Time
	BeforeID   int64
}

// EmailEvents returns one page of a tenant's events, newest first, and the total matching count.
func (db *DB) EmailEvents(ctx context.Context, f EventFilter) ([]*EmailEvent, int, error) {
	where, args := []string{`e.tenant_id = ?`}, []any{f.TenantID}
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		where = append(where, col+` IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+`)`)
		for _, v := range vals {
			args = append(args, v)
		}
	}
	in(`e.type`, f.Types)
	in(`e.recipient`, f.Recipients)
	if !f.From.IsZero() {
		where, args = append(where, `e.ts >= ?`), append(args, toMillis(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, `e.ts < ?`), append(args, toMillis(f.To))
	}
	cond := strings.Join(where, ` AND `)
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM email_events e WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	if f.BeforeID > 0 {
		cond += ` AND (e.ts, e.id) < (?, ?)`
		args = append(args, toMillis(f.BeforeTime), f.BeforeID)
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT e.id, e.source_id, e.event_id, e.type, e.wrapper, e.ts, e.body, e.status,
			COALESCE(e.reason, ''), COALESCE(e.segment_message_id, ''), COALESCE(d.status, ''), COALESCE(d.delivered_at, 0)
		FROM email_events e LEFT JOIN deliveries d ON d.ref_id = e.id AND d.target = 'segment'
		WHERE `+cond+` ORDER BY e.ts DESC, e.id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []*EmailEvent{}
	for rows.Next() {
		e := EmailEvent{TenantID: f.TenantID}
		var ts, delivered int64
		if err := rows.Scan(&e.ID, &e.SourceID, &e.EventID, &e.Type, &e.Wrapper, &ts, &e.Body, &e.Status, &e.Reason,
			&e.SegmentMessageID, &e.DeliveryStatus, &delivered); err != nil {
			return nil, 0, err
		}
		e.Time, e.DeliveredAt = fromMillis(ts), fromMillis(delivered)
		out = append(out, &e)
	}
	return out, total, rows.Err()
}
