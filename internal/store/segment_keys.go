package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// SegmentKey is a tenant's Segment write key as stored: sealed, with a hint for display.
type SegmentKey struct {
	TenantID    string
	WriteKeyEnc []byte
	Hint        string
	Endpoint    string
	MaxRPS      int
	Version     int64
	UpdatedAt   time.Time
	// Status is SegmentActive, or SegmentKeyRejected once Segment answered 401/403 to this key;
	// StatusSince and StatusReason say since when and what Segment answered.
	Status       string
	StatusSince  time.Time
	StatusReason string
}

// Segment lane statuses.
const (
	SegmentActive      = "active"
	SegmentKeyRejected = domain.ReasonKeyRejected
)

// PutSegmentKey registers or replaces a tenant's write key and returns the stored row (with its
// new version). A new key makes every pending Segment delivery of the tenant due at once: those
// that waited for a key, for a rejected key to be replaced, or for their next attempt after
// failures the old key may have caused. Errors: ENOTFOUND when the tenant does not exist.
func (db *DB) PutSegmentKey(ctx context.Context, k SegmentKey) (*SegmentKey, error) {
	k.UpdatedAt = db.Now().UTC().Truncate(time.Millisecond)
	k.Status, k.StatusSince, k.StatusReason = SegmentActive, time.Time{}, "" // a new key starts afresh
	err := db.Write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRow(`INSERT INTO segment_keys (tenant_id, write_key_enc, write_key_hint, endpoint, max_rps, version, updated_at)
			SELECT id, ?, ?, ?, ?, 1, ? FROM tenants WHERE id = ?
			ON CONFLICT (tenant_id) DO UPDATE SET write_key_enc = excluded.write_key_enc,
				write_key_hint = excluded.write_key_hint, endpoint = excluded.endpoint, max_rps = excluded.max_rps,
				version = segment_keys.version + 1, updated_at = excluded.updated_at,
				status = 'active', status_since = NULL, status_reason = NULL
			RETURNING version`,
			k.WriteKeyEnc, k.Hint, k.Endpoint, k.MaxRPS, toMillis(k.UpdatedAt), k.TenantID).Scan(&k.Version)
		if errors.Is(err, sql.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "tenant not found")
		} else if err != nil {
			return err
		}
		now := toMillis(k.UpdatedAt)
		if _, err = tx.Exec(`UPDATE deliveries SET reason = NULL, next_at = ? WHERE tenant_id = ? AND target = 'segment'
			AND status = 'paused' AND reason = 'no_write_key'`, now, k.TenantID); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE deliveries SET reason = NULL, next_at = MIN(next_at, ?) WHERE tenant_id = ? AND target = 'segment'
			AND status = 'pending' AND (next_at > ? OR reason IS NOT NULL)`, now, k.TenantID, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// SegmentKey returns a tenant's registered write key. Errors: ENOTFOUND when none is registered.
func (db *DB) SegmentKey(ctx context.Context, tenantID string) (*SegmentKey, error) {
	k := SegmentKey{TenantID: tenantID}
	var updated, since int64
	err := db.reader.QueryRowContext(ctx, `SELECT write_key_enc, write_key_hint, endpoint, max_rps, version, updated_at,
		status, COALESCE(status_since, 0), COALESCE(status_reason, '')
		FROM segment_keys WHERE tenant_id = ?`, tenantID).Scan(&k.WriteKeyEnc, &k.Hint, &k.Endpoint, &k.MaxRPS, &k.Version, &updated,
		&k.Status, &since, &k.StatusReason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "no Segment write key is registered for this tenant")
	} else if err != nil {
		return nil, err
	}
	k.UpdatedAt, k.StatusSince = fromMillis(updated), fromMillis(since)
	return &k, nil
}

// RejectSegmentKey records that Segment refused version of a tenant's write key (401/403) with
// reason, pausing the tenant's Segment lane. The first refusal's time is kept; a key replaced
// meanwhile (another version) is left alone.
func (db *DB) RejectSegmentKey(ctx context.Context, tenantID string, version int64, reason string) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE segment_keys SET status = 'write_key_rejected', status_reason = ?,
			status_since = CASE WHEN status = 'write_key_rejected' THEN status_since ELSE ? END
			WHERE tenant_id = ? AND version = ?`, domain.Truncate(reason, 300), toMillis(db.Now()), tenantID, version)
		return err
	})
}

// ResumeSegmentKey sets a tenant's Segment lane active again (a retry was asked for): the
// deliveries held for the rejected key are due now.
func (db *DB) ResumeSegmentKey(ctx context.Context, tenantID string) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE segment_keys SET status = 'active', status_since = NULL, status_reason = NULL
			WHERE tenant_id = ? AND status != 'active'`, tenantID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		_, err = tx.Exec(`UPDATE deliveries SET reason = NULL, next_at = MIN(next_at, ?) WHERE tenant_id = ? AND target = 'segment'
			AND status = 'pending' AND reason = ?`, toMillis(db.Now()), tenantID, SegmentKeyRejected)
		return err
	})
}
