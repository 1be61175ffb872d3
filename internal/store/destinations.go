package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Destination is a Segment Webhooks-destination target of one tenant (direction B). Settings is
// the JSON the destination package reads and writes; the store does not look inside.
type Destination struct {
	ID        string
	TenantID  string
	Name      string
	Settings  []byte
	CreatedAt time.Time
	UpdatedAt time.Time

	// Key is the current credential (hints only are shown again).
	Key DestinationKey
}

// DestinationKey is one API key and shared secret pair of a destination.
type DestinationKey struct {
	ID         int64
	APIKeyHash string
	APIKeyHint string
	SecretEnc  []byte
	SecretHint string
	ExpiresAt  time.Time // zero: current
	CreatedAt  time.Time
}

// CreateDestination stores a destination with its first key. d.CreatedAt and d.UpdatedAt are set.
// Errors: ENOTFOUND when the tenant does not exist.
func (db *DB) CreateDestination(ctx context.Context, d *Destination) error {
	now := db.Now().UTC().Truncate(time.Millisecond)
	d.CreatedAt, d.UpdatedAt, d.Key.CreatedAt = now, now, now
	return db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO destinations (id, tenant_id, name, settings, created_at, updated_at)
			SELECT ?, id, ?, ?, ?, ? FROM tenants WHERE id = ?`,
			d.ID, d.Name, string(d.Settings), toMillis(now), toMillis(now), d.TenantID)
		if err := expectOne("tenant")(res, err); err != nil {
			return err
		}
		return insertDestinationKey(tx, d.TenantID, d.ID, &d.Key)
	})
}

func insertDestinationKey(tx *sql.Tx, tenantID, destinationID string, k *DestinationKey) error {
	return tx.QueryRow(`INSERT INTO destination_keys (tenant_id, destination_id, api_key_hash, api_key_hint, secret_enc, secret_hint, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		tenantID, destinationID, k.APIKeyHash, k.APIKeyHint, k.SecretEnc, k.SecretHint, toMillis(k.CreatedAt)).Scan(&k.ID)
}

const destinationColumns = `d.id, d.tenant_id, d.name, d.settings, d.created_at, d.updated_at,
	k.id, k.api_key_hash, k.api_key_hint, k.secret_enc, k.secret_hint, k.created_at`

// destinationFrom joins each destination with its current key.
const destinationFrom = ` FROM destinations d JOIN destination_keys k ON k.destination_id = d.id AND k.expires_at IS NULL`

func scanDestination(row interface{ Scan(...any) error }) (*Destination, error) {
	var d Destination
	var settings string
	var created, updated, keyCreated int64
	if err := row.Scan(&d.ID, &d.TenantID, &d.Name, &settings, &created, &updated,
		&d.Key.ID, &d.Key.APIKeyHash, &d.Key.APIKeyHint, &d.Key.SecretEnc, &d.Key.SecretHint, &keyCreated); err != nil {
		return nil, err
	}
	d.Settings = []byte(settings)
	d.CreatedAt, d.UpdatedAt, d.Key.CreatedAt = fromMillis(created), fromMillis(updated), fromMillis(keyCreated)
	return &d, nil
}

// Destination returns one destination of a tenant with its current key. Errors: ENOTFOUND.
func (db *DB) Destination(ctx context.Context, tenantID, id string) (*Destination, error) {
	d, err := scanDestination(db.reader.QueryRowContext(ctx, `SELECT `+destinationColumns+destinationFrom+
		` WHERE d.id = ? AND d.tenant_id = ?`, id, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "destination not found")
	}
	return d, err
}

// Destinations returns one page of a tenant's destinations, oldest first, and the total count.
func (db *DB) Destinations(ctx context.Context, tenantID string, p Page) ([]*Destination, int, error) {
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM destinations WHERE tenant_id = ?`, tenantID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT `+destinationColumns+destinationFrom+`
		WHERE d.tenant_id = ? AND (d.created_at, d.id) > (?, ?) ORDER BY d.created_at, d.id LIMIT ?`,
		tenantID, toMillis(p.AfterTime), p.AfterID, p.Limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []*Destination{}
	for rows.Next() {
		d, err := scanDestination(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
	}
	return out, total, rows.Err()
}

// UpdateDestination replaces a destination's name and settings. Errors: ENOTFOUND.
func (db *DB) UpdateDestination(ctx context.Context, tenantID, id, name string, settings []byte) (*Destination, error) {
	err := db.Write(ctx, func(tx *sql.Tx) error {
		return expectOne("destination")(tx.Exec(`UPDATE destinations SET name = ?, settings = ?, updated_at = ? WHERE id = ? AND tenant_id = ?`,
			name, string(settings), toMillis(db.Now()), id, tenantID))
	})
	if err != nil {
		return nil, err
	}
	return db.Destination(ctx, tenantID, id)
}

// DeleteDestination removes a destination, its keys and its stored messages; its hook answers
// 404 from then on. Profiles and events stay: they belong to the tenant, not to one destination.
// Errors: ENOTFOUND.
func (db *DB) DeleteDestination(ctx context.Context, tenantID, id string) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		return expectOne("destination")(tx.Exec(`DELETE FROM destinations WHERE id = ? AND tenant_id = ?`, id, tenantID))
	})
}

// RotateDestinationKey makes k the current key and lets the keys current until now live for
// overlap more; keys whose overlap has passed are removed. It returns when the previous key
// stops working. Errors: ENOTFOUND.
func (db *DB) RotateDestinationKey(ctx context.Context, tenantID, id string, k *DestinationKey, overlap time.Duration) (time.Time, error) {
	now := db.Now().UTC().Truncate(time.Millisecond)
	k.CreatedAt = now
	until := now.Add(overlap)
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM destinations WHERE id = ? AND tenant_id = ?`, id, tenantID).Scan(&n); err != nil {
			return err
		} else if n == 0 {
			return domain.Errorf(domain.ENOTFOUND, "destination not found")
		}
		if _, err := tx.Exec(`DELETE FROM destination_keys WHERE destination_id = ? AND expires_at IS NOT NULL AND expires_at <= ?`,
			id, toMillis(now)); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE destination_keys SET expires_at = ? WHERE destination_id = ? AND expires_at IS NULL`,
			toMillis(until), id); err != nil {
			return err
		}
		return insertDestinationKey(tx, tenantID, id, k)
	})
	return until, err
}

// HookDestination is what the hook needs before it reads a body: the destination's tenant and
// settings, and every key that still works (current first).
type HookDestination struct {
	ID       string
	TenantID string
	Settings []byte
	Keys     []DestinationKey
}

const qDestinationForHook = `SELECT d.tenant_id, d.settings, k.id, k.api_key_hash, k.secret_enc, COALESCE(k.expires_at, 0)
	FROM destinations d JOIN destination_keys k ON k.destination_id = d.id
	WHERE d.id = ? AND (k.expires_at IS NULL OR k.expires_at > ?) ORDER BY k.expires_at IS NOT NULL, k.id DESC`

// DestinationForHook returns a destination with its unexpired keys. Errors: ENOTFOUND.
func (db *DB) DestinationForHook(ctx context.Context, id string) (*HookDestination, error) {
	rows, err := db.dest.hook.QueryContext(ctx, id, toMillis(db.Now()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	h := &HookDestination{ID: id}
	for rows.Next() {
		var k DestinationKey
		var settings string
		var exp int64
		if err := rows.Scan(&h.TenantID, &settings, &k.ID, &k.APIKeyHash, &k.SecretEnc, &exp); err != nil {
			return nil, err
		}
		h.Settings = []byte(settings)
		k.ExpiresAt = fromMillis(exp)
		h.Keys = append(h.Keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(h.Keys) == 0 {
		return nil, domain.Errorf(domain.ENOTFOUND, "destination not found")
	}
	return h, nil
}

const qDestinationForWrite = `SELECT tenant_id, settings, EXISTS (SELECT 1 FROM workflows w WHERE w.tenant_id = d.tenant_id)
	FROM destinations d WHERE id = ?`

// DestinationForWrite reads a destination's tenant and settings inside a write, so that a hook
// applies the settings current at commit and fails cleanly when the destination was deleted
// since it was authenticated; hasWorkflows says whether its tenant has any workflow, so that
// events need not look for matches when none can exist. Errors: ENOTFOUND.
func (t *Tx) DestinationForWrite(id string) (tenantID string, settings []byte, hasWorkflows bool, err error) {
	var s string
	err = t.queryRow(qDestinationForWrite, id).Scan(&tenantID, &s, &hasWorkflows)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, false, domain.Errorf(domain.ENOTFOUND, "destination not found")
	}
	return tenantID, []byte(s), hasWorkflows, err
}
