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
}

// PutSegmentKey registers or replaces a tenant's write key and returns the stored row (with its
// new version). Errors: ENOTFOUND when the tenant does not exist.
func (db *DB) PutSegmentKey(ctx context.Context, k SegmentKey) (*SegmentKey, error) {
	k.UpdatedAt = db.Now().UTC().Truncate(time.Millisecond)
	err := db.Write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRow(`INSERT INTO segment_keys (tenant_id, write_key_enc, write_key_hint, endpoint, max_rps, version, updated_at)
			SELECT id, ?, ?, ?, ?, 1, ? FROM tenants WHERE id = ?
			ON CONFLICT (tenant_id) DO UPDATE SET write_key_enc = excluded.write_key_enc,
				write_key_hint = excluded.write_key_hint, endpoint = excluded.endpoint, max_rps = excluded.max_rps,
				version = segment_keys.version + 1, updated_at = excluded.updated_at
			RETURNING version`,
			k.WriteKeyEnc, k.Hint, k.Endpoint, k.MaxRPS, toMillis(k.UpdatedAt), k.TenantID).Scan(&k.Version)
		if errors.Is(err, sql.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "tenant not found")
		} else if err != nil {
			return err
		}
		// Deliveries that waited for a key are due now.
		_, err = tx.Exec(`UPDATE deliveries SET reason = NULL, next_at = ? WHERE tenant_id = ? AND target = 'segment'
			AND status IN ('pending', 'paused') AND reason = 'no_write_key'`, toMillis(k.UpdatedAt), k.TenantID)
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
	var updated int64
	err := db.reader.QueryRowContext(ctx, `SELECT write_key_enc, write_key_hint, endpoint, max_rps, version, updated_at
		FROM segment_keys WHERE tenant_id = ?`, tenantID).Scan(&k.WriteKeyEnc, &k.Hint, &k.Endpoint, &k.MaxRPS, &k.Version, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "no Segment write key is registered for this tenant")
	} else if err != nil {
		return nil, err
	}
	k.UpdatedAt = fromMillis(updated)
	return &k, nil
}
