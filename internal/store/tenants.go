package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Tenant is one customer of the operator.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	TokenGen  int64     `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Page asks for one page of a list ordered by (created_at, id): After is the last row of the
// previous page (zero for the first page).
type Page struct {
	Limit      int
	AfterTime  time.Time
	AfterID    string
	WantsTotal bool
}

// CreateTenant stores a new tenant with a fresh id.
func (db *DB) CreateTenant(ctx context.Context, name string) (*Tenant, error) {
	now := db.Now().UTC().Truncate(time.Millisecond)
	t := &Tenant{ID: domain.NewID("ten_"), Name: name, TokenGen: 1, CreatedAt: now, UpdatedAt: now}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO tenants (id, name, token_gen, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.TokenGen, toMillis(now), toMillis(now))
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Tenant returns one tenant. Errors: ENOTFOUND.
func (db *DB) Tenant(ctx context.Context, id string) (*Tenant, error) {
	var t Tenant
	var created, updated int64
	err := db.reader.QueryRowContext(ctx, `SELECT id, name, token_gen, created_at, updated_at FROM tenants WHERE id = ?`, id).
		Scan(&t.ID, &t.Name, &t.TokenGen, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "tenant not found")
	} else if err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &t, nil
}

// Tenants returns one page of tenants, oldest first, and the total count.
func (db *DB) Tenants(ctx context.Context, p Page) ([]*Tenant, int, error) {
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants`).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT id, name, token_gen, created_at, updated_at FROM tenants
		WHERE (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?`, toMillis(p.AfterTime), p.AfterID, p.Limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*Tenant
	for rows.Next() {
		var t Tenant
		var created, updated int64
		if err := rows.Scan(&t.ID, &t.Name, &t.TokenGen, &created, &updated); err != nil {
			return nil, 0, err
		}
		t.CreatedAt, t.UpdatedAt = fromMillis(created), fromMillis(updated)
		out = append(out, &t)
	}
	return out, total, rows.Err()
}

// RenameTenant changes a tenant's name. Errors: ENOTFOUND.
func (db *DB) RenameTenant(ctx context.Context, id, name string) (*Tenant, error) {
	err := db.Write(ctx, func(tx *sql.Tx) error {
		return expectOne("tenant")(tx.Exec(`UPDATE tenants SET name = ?, updated_at = ? WHERE id = ?`, name, toMillis(db.Now()), id))
	})
	if err != nil {
		return nil, err
	}
	return db.Tenant(ctx, id)
}

// DeleteTenant removes a tenant and, through ON DELETE CASCADE, every row it owns. Errors: ENOTFOUND.
func (db *DB) DeleteTenant(ctx context.Context, id string) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		return expectOne("tenant")(tx.Exec(`DELETE FROM tenants WHERE id = ?`, id))
	})
}

// BumpTokenGen invalidates every token issued to the tenant so far and returns the new generation.
// Errors: ENOTFOUND.
func (db *DB) BumpTokenGen(ctx context.Context, id string) (int64, error) {
	var gen int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRow(`UPDATE tenants SET token_gen = token_gen + 1, updated_at = ? WHERE id = ? RETURNING token_gen`,
			toMillis(db.Now()), id).Scan(&gen)
		if errors.Is(err, sql.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "tenant not found")
		}
		return err
	})
	return gen, err
}

// expectOne turns "no row changed" into ENOTFOUND for the named kind of row.
func expectOne(what string) func(sql.Result, error) error {
	return func(res sql.Result, err error) error {
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return domain.Errorf(domain.ENOTFOUND, "%s not found", what)
		}
		return nil
	}
}
