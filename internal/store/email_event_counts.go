package store

import (
	"context"
	"database/sql"
	"strings"
)

// hourMillis is the width of one bucket of email_event_counts.
const hourMillis = 3600_000

// rolledCount returns a statement counting f's events from the hourly counts, when f filters
// by nothing but time and type. Whole hours inside [From, To) come from email_event_counts (the
// events up to the roll-up mark) plus a count of the events above the mark, which is a rowid
// range; the part-hours at either end are counted through the (tenant, type, ts) or (tenant, ts)
// index. All three read in one statement, so they see one snapshot.
func (f *EventFilter) rolledCount() (string, []any, bool) {
	if len(f.Recipients)+len(f.Campaigns)+len(f.Templates)+len(f.Transmissions)+len(f.Messages)+
		len(f.Subaccounts)+len(f.BounceClasses)+len(f.EventIDs) > 0 {
		return "", nil, false
	}
	from, to := toMillis(f.From), toMillis(f.To)
	// Buckets are ts / 3600000 truncated, which is a floor only for times after 1970.
	if (!f.From.IsZero() && from < 0) || (!f.To.IsZero() && to < hourMillis) {
		return "", nil, false
	}
	lo, hi := int64(-1), int64(-1) // whole hours [lo, hi); -1: open
	if !f.From.IsZero() {
		lo = (from + hourMillis - 1) / hourMillis
	}
	if !f.To.IsZero() {
		hi = to / hourMillis
	}
	if lo >= 0 && hi >= 0 && lo >= hi {
		return "", nil, false // inside one or two part-hours: the index is as quick
	}
	types := ""
	if len(f.Types) > 0 {
		types = " AND %s IN (" + marks(len(f.Types)) + ")"
	}
	typeArgs := make([]any, len(f.Types))
	for i, t := range f.Types {
		typeArgs[i] = t
	}
	var q strings.Builder
	var args []any

	q.WriteString(`SELECT (SELECT COALESCE(SUM(c.n), 0) FROM email_event_counts c WHERE c.tenant_id = ?`)
	args = append(args, f.TenantID)
	if lo >= 0 {
		q.WriteString(` AND c.hour >= ?`)
		args = append(args, lo)
	}
	if hi >= 0 {
		q.WriteString(` AND c.hour < ?`)
		args = append(args, hi)
	}
	if types != "" {
		q.WriteString(strings.Replace(types, "%s", "c.type", 1))
		args = append(args, typeArgs...)
	}
	q.WriteString(`)`)

	// Events not rolled up yet: a rowid range (NOT INDEXED still allows the rowid).
	q.WriteString(` + (SELECT COUNT(*) FROM email_events e NOT INDEXED WHERE e.id > (SELECT upto FROM email_event_counts_state WHERE id = 1) AND e.tenant_id = ?`)
	args = append(args, f.TenantID)
	if lo >= 0 {
		q.WriteString(` AND e.ts >= ?`)
		args = append(args, lo*hourMillis)
	}
	if hi >= 0 {
		q.WriteString(` AND e.ts < ?`)
		args = append(args, hi*hourMillis)
	}
	if types != "" {
		q.WriteString(strings.Replace(types, "%s", "e.type", 1))
		args = append(args, typeArgs...)
	}
	q.WriteString(`)`)

	edge := func(a, b int64) {
		q.WriteString(` + (SELECT COUNT(*) FROM email_events e WHERE e.tenant_id = ? AND e.ts >= ? AND e.ts < ?`)
		args = append(args, f.TenantID, a, b)
		if types != "" {
			q.WriteString(strings.Replace(types, "%s", "e.type", 1))
			args = append(args, typeArgs...)
		}
		q.WriteString(`)`)
	}
	if lo >= 0 && from < lo*hourMillis {
		edge(from, lo*hourMillis)
	}
	if hi >= 0 && hi*hourMillis < to {
		edge(hi*hourMillis, to)
	}
	return q.String(), args, true
}

// rollupStep bounds the rowid range one roll-up write covers, so that it never holds the
// writer for long.
const rollupStep = 20_000

// RollupEventCounts adds the events stored since the last call to the hourly counts, at most
// rollupStep rowids per call, and returns how many rowids it covered (0: up to date). Call it
// until it returns 0 to catch up.
func (db *DB) RollupEventCounts(ctx context.Context) (int64, error) {
	var covered int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		covered = 0
		var upto, top int64
		if err := tx.QueryRow(`SELECT upto FROM email_event_counts_state WHERE id = 1`).Scan(&upto); err != nil {
			return err
		}
		if err := tx.QueryRow(`SELECT COALESCE(MAX(id), 0) FROM email_events`).Scan(&top); err != nil {
			return err
		}
		hi := min(upto+rollupStep, top)
		if hi <= upto {
			return nil
		}
		if _, err := tx.Exec(`INSERT INTO email_event_counts (tenant_id, hour, type, n)
			SELECT tenant_id, ts / 3600000, type, COUNT(*) FROM email_events WHERE id > ? AND id <= ? GROUP BY tenant_id, ts / 3600000, type
			ON CONFLICT (tenant_id, hour, type) DO UPDATE SET n = n + excluded.n`, upto, hi); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE email_event_counts_state SET upto = ? WHERE id = 1`, hi); err != nil {
			return err
		}
		covered = hi - upto
		return nil
	})
	return covered, err
}
