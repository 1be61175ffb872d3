package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// SourceSettings are a source's mapping options; the type is shared with the rules and the
// mapping (domain.SourceSettings), and stored as JSON.
type SourceSettings = domain.SourceSettings

// Source is a webhook target of one tenant for one provider's events.
type Source struct {
	ID        string
	TenantID  string
	Name      string
	Provider  string // domain.ProviderSparkPost (the default when empty) | domain.ProviderSendGrid
	Auth      string // domain.AuthBasic | AuthOAuth2 | AuthSignature
	Settings  SourceSettings
	Paused    bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SourceCredential is one (username or client id, secret hash) pair of a source.
type SourceCredential struct {
	ID         int64
	SourceID   string
	TenantID   string
	Username   string
	SecretHash string
	ExpiresAt  time.Time // zero: current
}

// CreateSource stores a source with its first credential (none when username is empty).
func (db *DB) CreateSource(ctx context.Context, s *Source, username, secretHash string) error {
	now := db.Now().UTC().Truncate(time.Millisecond)
	s.CreatedAt, s.UpdatedAt = now, now
	settings, _ := json.Marshal(s.Settings)
	if s.Provider == "" {
		s.Provider = domain.ProviderSparkPost
	}
	return db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO sources (id, tenant_id, name, provider, auth, settings, paused, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, s.ID, s.TenantID, s.Name, s.Provider, s.Auth, settings, s.Paused, toMillis(now), toMillis(now)); err != nil {
			return err
		}
		if username == "" { // checked by the provider's signature alone: no credential
			return nil
		}
		_, err := tx.Exec(`INSERT INTO source_credentials (source_id, username, secret_hash, created_at) VALUES (?, ?, ?, ?)`,
			s.ID, username, secretHash, toMillis(now))
		return err
	})
}

const sourceColumns = `id, tenant_id, name, provider, auth, settings, paused, created_at, updated_at`

func scanSource(row interface{ Scan(...any) error }) (*Source, error) {
	var s Source
	var settings []byte
	var created, updated int64
	if err := row.Scan(&s.ID, &s.TenantID, &s.Name, &s.Provider, &s.Auth, &settings, &s.Paused, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(settings, &s.Settings); err != nil {
		return nil, err
	}
	s.CreatedAt, s.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &s, nil
}

// Source returns one source of a tenant. Errors: ENOTFOUND.
func (db *DB) Source(ctx context.Context, tenantID, id string) (*Source, error) {
	s, err := scanSource(db.reader.QueryRowContext(ctx, `SELECT `+sourceColumns+` FROM sources WHERE id = ? AND tenant_id = ?`, id, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "source not found")
	}
	return s, err
}

// SourceByID returns a source whatever its tenant (for the hook, which knows only the id). Errors: ENOTFOUND.
func (db *DB) SourceByID(ctx context.Context, id string) (*Source, error) {
	s, err := scanSource(db.reader.QueryRowContext(ctx, `SELECT `+sourceColumns+` FROM sources WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "source not found")
	}
	return s, err
}

// Sources lists a tenant's sources, oldest first.
func (db *DB) Sources(ctx context.Context, tenantID string, p Page) ([]*Source, int, error) {
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM sources WHERE tenant_id = ?`, tenantID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT `+sourceColumns+` FROM sources WHERE tenant_id = ? AND (created_at, id) > (?, ?)
		ORDER BY created_at, id LIMIT ?`, tenantID, toMillis(p.AfterTime), p.AfterID, p.Limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []*Source{}
	for rows.Next() {
		s, err := scanSource(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, s)
	}
	return out, total, rows.Err()
}

// UpdateSource saves a source's name, settings and paused flag. Pausing parks its pending
// deliveries and unpausing releases them, in the same transaction. Errors: ENOTFOUND.
func (db *DB) UpdateSource(ctx context.Context, s *Source) error {
	settings, _ := json.Marshal(s.Settings)
	now := db.Now().UTC().Truncate(time.Millisecond)
	return db.Write(ctx, func(tx *sql.Tx) error {
		var wasPaused bool
		err := tx.QueryRow(`SELECT paused FROM sources WHERE id = ? AND tenant_id = ?`, s.ID, s.TenantID).Scan(&wasPaused)
		if errors.Is(err, sql.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "source not found")
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE sources SET name = ?, settings = ?, paused = ?, updated_at = ? WHERE id = ?`,
			s.Name, settings, s.Paused, toMillis(now), s.ID); err != nil {
			return err
		}
		s.UpdatedAt = now
		switch {
		case s.Paused && !wasPaused:
			_, err = tx.Exec(`UPDATE deliveries SET status = 'paused', updated_at = ? WHERE origin_id = ? AND status = 'pending'`, toMillis(now), s.ID)
		case !s.Paused && wasPaused:
			_, err = tx.Exec(`UPDATE deliveries SET status = 'pending', next_at = ?, updated_at = ? WHERE origin_id = ? AND status = 'paused'`,
				toMillis(now), toMillis(now), s.ID)
		}
		return err
	})
}

// DeleteSource removes a source, its credentials, its inbox and its undelivered deliveries; the
// events it brought stay in the event store. Errors: ENOTFOUND.
func (db *DB) DeleteSource(ctx context.Context, tenantID, id string) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		if err := expectOne("source")(tx.Exec(`DELETE FROM sources WHERE id = ? AND tenant_id = ?`, id, tenantID)); err != nil {
			return err
		}
		_, err := tx.Exec(`DELETE FROM deliveries WHERE origin_id = ? AND status IN ('pending', 'paused')`, id)
		return err
	})
}

// RotateSourceCredential adds a new current credential and lets the current ones live for
// overlap more. Errors: ENOTFOUND.
func (db *DB) RotateSourceCredential(ctx context.Context, tenantID, sourceID, username, secretHash string, overlap time.Duration) error {
	now := db.Now()
	return db.Write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM sources WHERE id = ? AND tenant_id = ?`, sourceID, tenantID).Scan(&n); err != nil {
			return err
		} else if n == 0 {
			return domain.Errorf(domain.ENOTFOUND, "source not found")
		}
		if _, err := tx.Exec(`DELETE FROM source_credentials WHERE source_id = ? AND expires_at IS NOT NULL AND expires_at <= ?`,
			sourceID, toMillis(now)); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE source_credentials SET expires_at = ? WHERE source_id = ? AND expires_at IS NULL`,
			toMillis(now.Add(overlap)), sourceID); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO source_credentials (source_id, username, secret_hash, created_at) VALUES (?, ?, ?, ?)`,
			sourceID, username, secretHash, toMillis(now))
		return err
	})
}

// SourceCredentials returns a source's unexpired credentials.
func (db *DB) SourceCredentials(ctx context.Context, sourceID string) ([]SourceCredential, error) {
	return db.credentials(ctx, `c.source_id = ?`, sourceID)
}

// CredentialsByUsername returns the unexpired credentials with this username or client id.
func (db *DB) CredentialsByUsername(ctx context.Context, username string) ([]SourceCredential, error) {
	return db.credentials(ctx, `c.username = ?`, username)
}

func (db *DB) credentials(ctx context.Context, where string, arg any) ([]SourceCredential, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT c.id, c.source_id, s.tenant_id, c.username, c.secret_hash, COALESCE(c.expires_at, 0)
		FROM source_credentials c JOIN sources s ON s.id = c.source_id
		WHERE `+where+` AND (c.expires_at IS NULL OR c.expires_at > ?) ORDER BY c.id DESC`, arg, toMillis(db.Now()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SourceCredential
	for rows.Next() {
		var c SourceCredential
		var exp int64
		if err := rows.Scan(&c.ID, &c.SourceID, &c.TenantID, &c.Username, &c.SecretHash, &exp); err != nil {
			return nil, err
		}
		c.ExpiresAt = fromMillis(exp)
		out = append(out, c)
	}
	return out, rows.Err()
}
