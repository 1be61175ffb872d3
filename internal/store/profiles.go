package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// ProfileRow is a stored subscriber profile: its JSON (the destination package's Profile) and
// the times the list is ordered by.
type ProfileRow struct {
	DistinctID string
	Body       []byte
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// ChannelValue is one channel address of a profile, as indexed for lookups.
type ChannelValue struct {
	Channel string // $email, $sms, …
	Value   string // emails lower-cased
}

const (
	qProfile       = `SELECT distinct_id, body, created_at, updated_at FROM profiles WHERE tenant_id = ? AND distinct_id = ?`
	qProfileExists = `SELECT 1 FROM profiles WHERE tenant_id = ? AND distinct_id = ?`
	qPutProfile    = `INSERT INTO profiles (tenant_id, distinct_id, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, distinct_id) DO UPDATE SET body = excluded.body, created_at = excluded.created_at, updated_at = excluded.updated_at`
	qDeleteChannels = `DELETE FROM profile_channels WHERE tenant_id = ? AND distinct_id = ?`
	qInsertChannel  = `INSERT OR IGNORE INTO profile_channels (tenant_id, distinct_id, channel, value) VALUES (?, ?, ?, ?)`
)

// Profile reads a profile inside a write; nil (and no error) when there is none.
func (t *Tx) Profile(tenantID, distinctID string) (*ProfileRow, error) {
	return scanProfile(t.queryRow(qProfile, tenantID, distinctID))
}

// ProfileExists reports whether a tenant has a profile for distinctID.
func (t *Tx) ProfileExists(tenantID, distinctID string) (bool, error) {
	var one int
	err := t.queryRow(qProfileExists, tenantID, distinctID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func scanProfile(row *sql.Row) (*ProfileRow, error) {
	var p ProfileRow
	var created, updated int64
	err := row.Scan(&p.DistinctID, &p.Body, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &p, nil
}

// PutProfile inserts or replaces a profile. When channels is not nil it replaces the profile's
// indexed channel values (callers pass nil when the channels did not change); isNew says the
// profile did not exist, so there are no old values to remove.
func (t *Tx) PutProfile(tenantID string, p ProfileRow, isNew bool, channels []ChannelValue) error {
	if _, err := t.exec(qPutProfile, tenantID, p.DistinctID, p.Body, toMillis(p.CreatedAt), toMillis(p.UpdatedAt)); err != nil {
		return err
	}
	if channels == nil {
		return nil
	}
	if !isNew {
		if _, err := t.exec(qDeleteChannels, tenantID, p.DistinctID); err != nil {
			return err
		}
	}
	for _, c := range channels {
		if _, err := t.exec(qInsertChannel, tenantID, p.DistinctID, c.Channel, c.Value); err != nil {
			return err
		}
	}
	return nil
}

// DeleteProfile removes a profile and its channel values (an alias merged it away, or a delete).
func (t *Tx) DeleteProfile(tenantID, distinctID string) error {
	_, err := t.sql.Exec(`DELETE FROM profiles WHERE tenant_id = ? AND distinct_id = ?`, tenantID, distinctID)
	return err
}

// Profile returns one profile of a tenant. Errors: ENOTFOUND.
func (db *DB) Profile(ctx context.Context, tenantID, distinctID string) (*ProfileRow, error) {
	p, err := scanProfile(db.reader.QueryRowContext(ctx, `SELECT distinct_id, body, created_at, updated_at FROM profiles
		WHERE tenant_id = ? AND distinct_id = ?`, tenantID, distinctID))
	if err == nil && p == nil {
		return nil, domain.Errorf(domain.ENOTFOUND, "user not found")
	}
	return p, err
}

// ProfileFilter selects profiles by channel value; each non-empty field must match.
type ProfileFilter struct {
	TenantID string
	// Channels restricts Value to these channels (empty: any channel).
	Channels []string
	// Values are the accepted spellings of the value (e.g. as sent and lower-cased).
	Values []string
}

// Profiles returns one page of a tenant's profiles, oldest first, and the total matching count.
func (db *DB) Profiles(ctx context.Context, f ProfileFilter, p Page) ([]*ProfileRow, int, error) {
	where, args := `p.tenant_id = ?`, []any{f.TenantID}
	if len(f.Values) > 0 {
		where += ` AND EXISTS (SELECT 1 FROM profile_channels c WHERE c.tenant_id = p.tenant_id AND c.distinct_id = p.distinct_id
			AND c.value IN (?` + strings.Repeat(`, ?`, len(f.Values)-1) + `)`
		for _, v := range f.Values {
			args = append(args, v)
		}
		if len(f.Channels) > 0 {
			where += ` AND c.channel IN (?` + strings.Repeat(`, ?`, len(f.Channels)-1) + `)`
			for _, c := range f.Channels {
				args = append(args, c)
			}
		}
		where += `)`
	}
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM profiles p WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT p.distinct_id, p.body, p.created_at, p.updated_at FROM profiles p
		WHERE `+where+` AND (p.created_at, p.distinct_id) > (?, ?) ORDER BY p.created_at, p.distinct_id LIMIT ?`,
		append(args, toMillis(p.AfterTime), p.AfterID, p.Limit)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []*ProfileRow{}
	for rows.Next() {
		var r ProfileRow
		var created, updated int64
		if err := rows.Scan(&r.DistinctID, &r.Body, &created, &updated); err != nil {
			return nil, 0, err
		}
		r.CreatedAt, r.UpdatedAt = fromMillis(created), fromMillis(updated)
		out = append(out, &r)
	}
	return out, total, rows.Err()
}

// ProfileBodies returns the stored JSON of the named profiles that exist, by distinct id; the
// replay uses it to compare profiles before and after.
func (db *DB) ProfileBodies(ctx context.Context, tenantID string, ids []string) (map[string][]byte, error) {
	return profileBodies(func(args ...any) (*sql.Rows, error) { return db.reader.QueryContext(ctx, qProfileBodies, args...) }, tenantID, ids)
}

// ProfileBodies is DB.ProfileBodies inside a write: a hook call reads the profiles it will
// change in one query rather than one per message.
func (t *Tx) ProfileBodies(tenantID string, ids []string) (map[string][]byte, error) {
	return profileBodies(func(args ...any) (*sql.Rows, error) { return t.query(qProfileBodies, args...) }, tenantID, ids)
}

// qProfileBodies takes the ids as one JSON array, so that one prepared statement serves any
// number of them; SQLite looks each up by the primary key.
const qProfileBodies = `SELECT distinct_id, body FROM profiles WHERE tenant_id = ? AND distinct_id IN (SELECT value FROM json_each(?))`

func profileBodies(query func(args ...any) (*sql.Rows, error), tenantID string, ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := query(tenantID, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			return nil, err
		}
		out[id] = body
	}
	return out, rows.Err()
}

// EraseUser removes everything a tenant holds about distinctID: the profile, its channels and
// its events. When deliveries is true it also removes the user's workflow deliveries, so that
// nothing about an erased user is sent later.
func (t *Tx) EraseUser(tenantID, distinctID string, deliveries bool) error {
	if err := t.DeleteProfile(tenantID, distinctID); err != nil {
		return err
	}
	if _, err := t.sql.Exec(`DELETE FROM user_events WHERE tenant_id = ? AND distinct_id = ?`, tenantID, distinctID); err != nil {
		return err
	}
	if !deliveries {
		return nil
	}
	_, err := t.sql.Exec(`DELETE FROM deliveries WHERE tenant_id = ? AND subject = ? AND target = ?`, tenantID, distinctID, domain.TargetWorkflow)
	return err
}
