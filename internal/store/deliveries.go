package store

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Delivery is one outbound message with its attempts.
type Delivery struct {
	ID          int64     `json:"id"`
	TenantID    string    `json:"-"`
	Target      string    `json:"target"`
	OriginID    string    `json:"origin_id"`
	RefID       int64     `json:"-"`
	MessageID   string    `json:"message_id"`
	Payload     []byte    `json:"-"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	Attempts    int       `json:"attempts"`
	NextAt      time.Time `json:"next_attempt_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	LastError   string    `json:"last_error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	DeliveredAt time.Time `json:"delivered_at"`
}

// NewDelivery is what a producer puts into the outbox.
type NewDelivery struct {
	TenantID  string
	Target    string
	OriginID  string
	RefID     int64
	MessageID string
	Payload   []byte
	Status    string // domain.StatusPending (default) or domain.StatusPaused
	Reason    string
	NotBefore time.Time     // zero: now
	MaxAge    time.Duration // how long it is retried before it is dead
	Subject   string        // whom it is about (a workflow delivery's distinct id), if anyone
}

// A delivery as inserted: insertDeliveriesHead, then one insertDeliveryRow per delivery with the
// values of NewDelivery.appendArgs. Its payload goes into delivery_payloads under the row's id
// (insertPayloadsHead, one insertPayloadRow each), a table claims and outcomes never touch, so
// that claiming and finishing a delivery rewrite a small row and not its payload's pages.
const (
	insertDeliveriesHead = `INSERT INTO deliveries (tenant_id, target, origin_id, ref_id, message_id, status, reason,
	next_at, expires_at, created_at, updated_at, subject) VALUES `
	insertDeliveryRow  = `(?, ?, ?, ?, ?, ?, NULLIF(?, ''), ?, ?, ?, ?, NULLIF(?, ''))`
	insertDeliverySQL  = insertDeliveriesHead + insertDeliveryRow
	insertPayloadsHead = `INSERT INTO delivery_payloads (delivery_id, payload) VALUES `
	insertPayloadRow   = `(?, ?)`
	insertPayloadSQL   = insertPayloadsHead + insertPayloadRow
)

// appendArgs appends d's values for one insertDeliveryRow, created at now.
func (d NewDelivery) appendArgs(args []any, now time.Time) []any {
	if d.Status == "" {
		d.Status = domain.StatusPending
	}
	next := d.NotBefore
	if next.IsZero() {
		next = now
	}
	return append(args, d.TenantID, d.Target, d.OriginID, d.RefID, d.MessageID, d.Status, d.Reason,
		toMillis(next), toMillis(now.Add(d.MaxAge)), toMillis(now), toMillis(now), d.Subject)
}

// InsertDelivery adds a delivery inside the caller's transaction, so that the outbox row commits
// together with whatever caused it.
func InsertDelivery(tx *sql.Tx, now time.Time, d NewDelivery) (int64, error) {
	return deliveryInserter{tx.Exec}.insert(now, d)
}

// deliveryInserter inserts deliveries through prepared statements when many go in one transaction.
type deliveryInserter struct {
	exec func(query string, args ...any) (sql.Result, error)
}

// insert adds d and its payload. No RETURNING: SQLite runs it as a trigger with a statement
// journal, and the id is the insert's rowid.
func (i deliveryInserter) insert(now time.Time, d NewDelivery) (int64, error) {
	res, err := i.exec(insertDeliverySQL, d.appendArgs(nil, now)...)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	_, err = i.exec(insertPayloadSQL, id, d.Payload)
	return id, err
}

// deliveryColumns are read from deliveryTables.
const (
	deliveryColumns = `id, tenant_id, target, origin_id, COALESCE(ref_id, 0), message_id, payload, status, COALESCE(reason, ''),
	attempts, next_at, expires_at, COALESCE(last_error, ''), created_at, updated_at, COALESCE(delivered_at, 0)`
	deliveryTables = `deliveries JOIN delivery_payloads ON delivery_id = id`
)

func scanDelivery(row interface{ Scan(...any) error }) (*Delivery, error) {
	var d Delivery
	var next, exp, created, updated, delivered int64
	if err := row.Scan(&d.ID, &d.TenantID, &d.Target, &d.OriginID, &d.RefID, &d.MessageID, &d.Payload, &d.Status, &d.Reason,
		&d.Attempts, &next, &exp, &d.LastError, &created, &updated, &delivered); err != nil {
		return nil, err
	}
	d.NextAt, d.ExpiresAt, d.CreatedAt, d.UpdatedAt, d.DeliveredAt = fromMillis(next), fromMillis(exp), fromMillis(created), fromMillis(updated), fromMillis(delivered)
	return &d, nil
}

// ClaimDeliveries marks up to limit due deliveries of one tenant and target as sending, counts
// the attempt, and returns them oldest first.
func (db *DB) ClaimDeliveries(ctx context.Context, target, tenantID string, limit int) ([]*Delivery, error) {
	var out []*Delivery
	err := db.Write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		now := toMillis(db.Now())
		// Read, then mark: an UPDATE … RETURNING cannot join the payloads, and SQLite runs
		// RETURNING as a trigger with a statement journal. No other writer runs in between.
		rows, err := tx.Query(`SELECT `+deliveryColumns+` FROM `+deliveryTables+`
			WHERE target = ? AND tenant_id = ? AND status = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?`,
			target, tenantID, now, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		var ids []any
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				return err
			}
			d.Status, d.Attempts, d.UpdatedAt = domain.StatusSending, d.Attempts+1, fromMillis(now)
			out = append(out, d)
			ids = append(ids, d.ID)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = updateByIDs(tx, `UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = ? WHERE id IN (`,
			[]any{now}, ids)
		return err
	})
	slices.SortFunc(out, func(a, b *Delivery) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

// Outcome is what became of one claimed delivery.
type Outcome struct {
	ID        int64
	Delivered bool
	Err       string    // the failure, when not delivered
	Dead      bool      // the failure is final (the receiver refused this message as it is): dead now
	Reason    string    // why a failed row waits (write_key_rejected, …), shown beside its last error
	Hold      string    // a reason to put the row back without counting the attempt (no_write_key, …)
	NextAt    time.Time // when to try again (failures and holds)
	// Requests is how many HTTP requests carried this delivery in its claim, when more than the
	// one the claim counted (a request split to find the message a receiver refused).
	Requests int
}

// FinishDeliveries records outcomes of claimed deliveries in one transaction. A failed delivery
// past its expiry becomes dead. It returns how many became delivered and dead.
func (db *DB) FinishDeliveries(ctx context.Context, outs []Outcome) (delivered, dead int, err error) {
	write := db.Write
	if len(outs) > 50 {
		write = db.WriteBulk
	}
	err = write(ctx, func(tx *sql.Tx) error {
		delivered, dead = 0, 0
		now := toMillis(db.Now())
		var ok []any
		for _, o := range outs {
			switch {
			case o.Delivered && o.Requests > 1:
				if _, err := tx.Exec(`UPDATE deliveries SET attempts = attempts + ? WHERE id = ? AND status = 'sending'`,
					o.Requests-1, o.ID); err != nil {
					return err
				}
				ok = append(ok, o.ID)
			case o.Delivered:
				ok = append(ok, o.ID)
			case o.Hold != "":
				if _, err := tx.Exec(`UPDATE deliveries SET status = 'pending', attempts = MAX(attempts - 1, 0), reason = ?, next_at = ?, updated_at = ?
					WHERE id = ? AND status = 'sending'`, o.Hold, toMillis(o.NextAt), now, o.ID); err != nil {
					return err
				}
			default:
				var status string
				if err := tx.QueryRow(`UPDATE deliveries SET status = CASE WHEN ? OR expires_at <= ? THEN 'dead' ELSE 'pending' END,
					attempts = attempts + ?, last_error = ?, next_at = ?, updated_at = ?, reason = NULLIF(?, '')
					WHERE id = ? AND status = 'sending' RETURNING status`,
					o.Dead, now, max(o.Requests-1, 0), domain.Truncate(o.Err, 1000), toMillis(o.NextAt), now, o.Reason, o.ID).Scan(&status); err != nil && err != sql.ErrNoRows {
					return err
				}
				if status == domain.StatusDead {
					dead++
				}
			}
		}
		// The common case, every message accepted, is a few statements rather than one per row.
		n, err := updateByIDs(tx, `UPDATE deliveries SET status = 'delivered', delivered_at = ?, updated_at = ?, reason = NULL,
			last_error = NULL WHERE status = 'sending' AND id IN (`, []any{now, now}, ok)
		delivered = int(n)
		return err
	})
	return delivered, dead, err
}

// updateByIDs runs update (ending in "id IN (") with args for ids, 500 ids per statement, and
// returns how many rows changed.
func updateByIDs(tx *sql.Tx, update string, args, ids []any) (int64, error) {
	var changed int64
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		res, err := tx.Exec(update+marks(len(chunk))+`)`, append(slices.Clip(args), chunk...)...)
		if err != nil {
			return changed, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return changed, err
		}
		changed += n
	}
	return changed, nil
}

// marks returns "?, ?, …" with n placeholders.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// ReleaseSending hands every delivery of target still marked sending back to pending: called at
// start (rows a crashed process had claimed) and at shutdown (rows not finished in time).
func (db *DB) ReleaseSending(ctx context.Context, target string) (int64, error) {
	var n int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE deliveries SET status = 'pending', attempts = MAX(attempts - 1, 0), updated_at = ?
			WHERE target = ? AND status = 'sending'`, toMillis(db.Now()), target)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// ReleaseDeliveries hands specific claimed deliveries back to pending without counting the attempt.
func (db *DB) ReleaseDeliveries(ctx context.Context, ids []int64) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		now := toMillis(db.Now())
		for _, id := range ids {
			if _, err := tx.Exec(`UPDATE deliveries SET status = 'pending', attempts = MAX(attempts - 1, 0), updated_at = ?
				WHERE id = ? AND status = 'sending'`, now, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// PendingTenants lists the tenants that have pending deliveries for target.
func (db *DB) PendingTenants(ctx context.Context, target string) ([]string, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT DISTINCT tenant_id FROM deliveries WHERE target = ? AND status = 'pending'`, target)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// NextDue returns when the tenant's next pending delivery for target is due; ok is false when
// it has none.
func (db *DB) NextDue(ctx context.Context, target, tenantID string) (t time.Time, ok bool, err error) {
	var next sql.NullInt64
	err = db.reader.QueryRowContext(ctx, `SELECT MIN(next_at) FROM deliveries WHERE target = ? AND tenant_id = ? AND status = 'pending'`,
		target, tenantID).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, false, err
	}
	return fromMillis(next.Int64), true, nil
}

// OutboxStat is the depth and age of one tenant's undelivered (pending or sending) deliveries
// for one target, and when the first of them would turn dead.
type OutboxStat struct {
	TenantID      string
	Target        string
	Pending       int
	OldestCreated time.Time
	FirstExpiry   time.Time
}

// OutboxStats returns the undelivered depth, oldest undelivered delivery and first expiry per
// tenant and target.
func (db *DB) OutboxStats(ctx context.Context) ([]OutboxStat, error) {
	return db.outboxStats(ctx, `status IN ('pending', 'sending')`)
}

// TenantOutboxStat is OutboxStats for one tenant and target; Pending is 0 when nothing waits.
func (db *DB) TenantOutboxStat(ctx context.Context, tenantID, target string) (OutboxStat, error) {
	stats, err := db.outboxStats(ctx, `tenant_id = ? AND target = ? AND status IN ('pending', 'sending')`, tenantID, target)
	if err != nil || len(stats) == 0 {
		return OutboxStat{TenantID: tenantID, Target: target}, err
	}
	return stats[0], nil
}

func (db *DB) outboxStats(ctx context.Context, where string, args ...any) ([]OutboxStat, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT tenant_id, target, COUNT(*), MIN(created_at), MIN(expires_at) FROM deliveries
		WHERE `+where+` GROUP BY tenant_id, target`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxStat
	for rows.Next() {
		var s OutboxStat
		var oldest, expiry int64
		if err := rows.Scan(&s.TenantID, &s.Target, &s.Pending, &oldest, &expiry); err != nil {
			return nil, err
		}
		s.OldestCreated, s.FirstExpiry = fromMillis(oldest), fromMillis(expiry)
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeliveryFilter selects deliveries for the admin API.
type DeliveryFilter struct {
	TenantID string
	Target   string // "" for all
	Status   string // "" for all
	Reason   string // "" for any
	OriginID string
	From, To time.Time
	Limit    int
	BeforeID int64 // newest first: rows with id < BeforeID (0: from the newest)
}

// Deliveries lists a tenant's deliveries newest first, and the total matching count.
func (db *DB) Deliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, int, error) {
	where, args := deliveryWhere(f)
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	if f.BeforeID > 0 {
		where += ` AND id < ?`
		args = append(args, f.BeforeID)
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM `+deliveryTables+` WHERE `+where+` ORDER BY id DESC LIMIT ?`,
		append(args, f.Limit)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []*Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
	}
	return out, total, rows.Err()
}

func deliveryWhere(f DeliveryFilter) (string, []any) {
	where, args := `tenant_id = ?`, []any{f.TenantID}
	if f.Target != "" {
		where += ` AND target = ?`
		args = append(args, f.Target)
	}
	switch f.Status {
	case "":
	case domain.StatusFailed:
		where += ` AND status = 'pending' AND attempts > 0 AND last_error IS NOT NULL`
	default:
		where += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Reason != "" {
		where += ` AND reason = ?`
		args = append(args, f.Reason)
	}
	if f.OriginID != "" {
		where += ` AND origin_id = ?`
		args = append(args, f.OriginID)
	}
	if !f.From.IsZero() {
		where += ` AND created_at >= ?`
		args = append(args, toMillis(f.From))
	}
	if !f.To.IsZero() {
		where += ` AND created_at < ?`
		args = append(args, toMillis(f.To))
	}
	return where, args
}

// RetryDeliveries re-queues a tenant's deliveries matching f and returns how many it re-queued:
// dead ones get a fresh retry window; failed ones (domain.StatusFailed: pending after a failed attempt)
// are due now, keeping their attempts and window.
func (db *DB) RetryDeliveries(ctx context.Context, f DeliveryFilter, maxAge time.Duration) (int64, error) {
	var n int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		where, args := deliveryWhere(f)
		now := db.Now()
		set, setArgs := `status = 'pending', attempts = 0, next_at = ?, expires_at = ?, updated_at = ?, reason = NULL`,
			[]any{toMillis(now), toMillis(now.Add(maxAge)), toMillis(now)}
		if f.Status == domain.StatusFailed {
			set, setArgs = `next_at = MIN(next_at, ?), updated_at = ?, reason = NULL`, []any{toMillis(now), toMillis(now)}
		}
		res, err := tx.Exec(`UPDATE deliveries SET `+set+` WHERE `+where, append(setArgs, args...)...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
