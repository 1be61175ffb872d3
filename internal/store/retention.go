package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Retention limits (SPEC §5.5: configurable per tenant, default 90 days).
const (
	DefaultRetentionDays = 90
	MaxRetentionDays     = 3650
)

// Prune batch sizes: one write deletes at most this many events (each with its delivery and
// index entries: 500 take a few tens of milliseconds) or raw batches and bytes of raw batches
// (a 16 MiB body frees a thousand pages). Prunes are background writes (WriteBulk): webhooks go
// first and wait at most for one of them.
const (
	pruneEvents     = 500
	pruneBatches    = 20
	pruneBatchBytes = 16 << 20
)

// RetentionDays returns how many days a tenant's events are kept. Errors: ENOTFOUND.
func (db *DB) RetentionDays(ctx context.Context, tenantID string) (int, error) {
	var days int
	err := db.reader.QueryRowContext(ctx, `SELECT retention_days FROM tenants WHERE id = ?`, tenantID).Scan(&days)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, domain.Errorf(domain.ENOTFOUND, "tenant not found")
	}
	return days, err
}

// SetRetentionDays changes how many days a tenant's events are kept. Errors: EINVALID, ENOTFOUND.
func (db *DB) SetRetentionDays(ctx context.Context, tenantID string, days int) error {
	if days < 1 || days > MaxRetentionDays {
		return domain.Errorf(domain.EINVALID, "retention_days: must be a whole number from 1 to %d", MaxRetentionDays)
	}
	return db.Write(ctx, func(tx *sql.Tx) error {
		return expectOne("tenant")(tx.Exec(`UPDATE tenants SET retention_days = ?, updated_at = ? WHERE id = ?`,
			days, toMillis(db.Now()), tenantID))
	})
}

// Pruned counts what retention removed.
type Pruned struct {
	Events     int64
	Deliveries int64
	Batches    int64
	Jobs       int64
}

func (p *Pruned) add(q Pruned) {
	p.Events += q.Events
	p.Deliveries += q.Deliveries
	p.Batches += q.Batches
	p.Jobs += q.Jobs
}

// PruneTenant removes a tenant's events older than cutoff with their Segment deliveries, the raw
// batches received before cutoff and the back-fill jobs finished before it, one small background
// write at a time so that webhooks never wait long behind it. An event goes when both its own
// time and its arrival (its batch's) are before cutoff: an old event that arrives late (a
// back-fill) is kept for the retention period too. An event whose delivery is still under way
// (pending, sending, paused) stays until it is done: retention never drops what is owed to Segment.
func (db *DB) PruneTenant(ctx context.Context, tenantID string, cutoff time.Time) (Pruned, error) {
	var total Pruned
	for {
		var p Pruned
		err := db.WriteBulk(ctx, func(tx *sql.Tx) error {
			p = Pruned{}
			return pruneEventsTx(tx, tenantID, toMillis(cutoff), &p)
		})
		total.add(p)
		if err != nil {
			return total, err
		}
		if p.Events < pruneEvents {
			break
		}
	}
	for {
		var p Pruned
		var more bool
		err := db.WriteBulk(ctx, func(tx *sql.Tx) (err error) {
			p = Pruned{}
			more, err = pruneBatchesTx(tx, tenantID, toMillis(cutoff), &p)
			return err
		})
		total.add(p)
		if err != nil {
			return total, err
		}
		if !more {
			break
		}
	}
	err := db.WriteBulk(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM backfill_jobs WHERE tenant_id = ? AND finished_at < ?`, tenantID, toMillis(cutoff))
		if err != nil {
			return err
		}
		total.Jobs, err = res.RowsAffected()
		if err != nil {
			return err
		}
		_, err = tx.Exec(`DELETE FROM email_event_counts WHERE tenant_id = ? AND hour < ? AND n <= 0`, tenantID, toMillis(cutoff)/hourMillis)
		return err
	})
	return total, err
}

// pruneBatchesTx deletes the oldest of a tenant's processed raw batches received before cutoff,
// up to pruneBatches of them and pruneBatchBytes of bodies (at least one), and reports whether
// more may be left.
func pruneBatchesTx(tx *sql.Tx, tenantID string, cutoff int64, p *Pruned) (more bool, err error) {
	rows, err := tx.Query(`SELECT id, bytes FROM inbox WHERE tenant_id = ? AND received_at < ? AND processed_at IS NOT NULL
		ORDER BY received_at LIMIT ?`, tenantID, cutoff, pruneBatches)
	if err != nil {
		return false, err
	}
	var ids []any
	found, size := 0, 0
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return false, err
		}
		found++
		if size += n; len(ids) == 0 || size <= pruneBatchBytes {
			ids = append(ids, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return false, err
	}
	res, err := tx.Exec(`DELETE FROM inbox WHERE id IN (`+marks(len(ids))+`)`, ids...)
	if err != nil {
		return false, err
	}
	if p.Batches, err = res.RowsAffected(); err != nil {
		return false, err
	}
	return found == pruneBatches || len(ids) < found, nil
}

func pruneEventsTx(tx *sql.Tx, tenantID string, cutoff int64, p *Pruned) error {
	rows, err := tx.Query(`DELETE FROM email_events WHERE id IN (
			SELECT e.id FROM email_events e LEFT JOIN inbox i ON i.id = e.inbox_id
			WHERE e.tenant_id = ? AND e.ts < ? AND (i.received_at IS NULL OR i.received_at < ?)
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.ref_id = e.id AND d.target = 'segment'
				AND d.status IN ('pending', 'sending', 'paused'))
			ORDER BY e.ts LIMIT ?)
		RETURNING id`, tenantID, cutoff, cutoff, pruneEvents)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	p.Events = int64(len(ids))
	if len(ids) == 0 {
		return nil
	}
	del, err := tx.Prepare(`DELETE FROM deliveries WHERE ref_id = ? AND target = 'segment'`)
	if err != nil {
		return err
	}
	defer del.Close()
	for _, id := range ids {
		res, err := del.Exec(id)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		p.Deliveries += n
	}
	return nil
}

// PruneExpired applies every tenant's retention (see PruneTenant) and returns what it removed.
func (db *DB) PruneExpired(ctx context.Context) (Pruned, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT id, retention_days FROM tenants ORDER BY id`)
	if err != nil {
		return Pruned{}, err
	}
	type tenant struct {
		id   string
		days int
	}
	var ts []tenant
	for rows.Next() {
		var t tenant
		if err := rows.Scan(&t.id, &t.days); err != nil {
			rows.Close()
			return Pruned{}, err
		}
		ts = append(ts, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Pruned{}, err
	}
	var total Pruned
	now := db.Now()
	for _, t := range ts {
		p, err := db.PruneTenant(ctx, t.id, now.Add(-time.Duration(t.days)*24*time.Hour))
		total.add(p)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Space is the size of the database file in pages: Free pages are reused by new rows before the
// file grows.
type Space struct {
	Pages, Free, PageSize int64
}

// Bytes is the database size the pages make up.
func (s Space) Bytes() int64 { return s.Pages * s.PageSize }

// SpaceUsed reports the database's size and free pages, as the writer sees them (WAL included).
func (db *DB) SpaceUsed(ctx context.Context) (Space, error) {
	var s Space
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRow(`PRAGMA page_count`).Scan(&s.Pages); err != nil {
			return err
		}
		if err := tx.QueryRow(`PRAGMA freelist_count`).Scan(&s.Free); err != nil {
			return err
		}
		return tx.QueryRow(`PRAGMA page_size`).Scan(&s.PageSize)
	})
	return s, err
}

// Checkpoint copies the WAL into the database file without waiting for readers (PASSIVE), so
// that the WAL does not keep the pages of pruned rows alive after a large prune. It runs on the
// checkpointer's connection: on the writer's, it would hold up every write while it copies.
func (db *DB) Checkpoint(ctx context.Context) error {
	_, err := db.ckpt.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	return err
}
