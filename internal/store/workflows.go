package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Workflow is a tenant's rule "when event E arrives, POST it with the recipient's channels to URL".
type Workflow struct {
	ID         string
	TenantID   string
	Name       string
	Event      string
	URL        string
	SecretEnc  []byte
	SecretHint string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

const workflowColumns = `id, tenant_id, name, event, url, secret_enc, secret_hint, created_at, updated_at`

func scanWorkflow(row interface{ Scan(...any) error }) (*Workflow, error) {
	var w Workflow
	var created, updated int64
	if err := row.Scan(&w.ID, &w.TenantID, &w.Name, &w.Event, &w.URL, &w.SecretEnc, &w.SecretHint, &created, &updated); err != nil {
		return nil, err
	}
	w.CreatedAt, w.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &w, nil
}

// CreateWorkflow stores a workflow; w.CreatedAt and w.UpdatedAt are set. Errors: ENOTFOUND when
// the tenant does not exist.
func (db *DB) CreateWorkflow(ctx context.Context, w *Workflow) error {
	now := db.Now().UTC().Truncate(time.Millisecond)
	w.CreatedAt, w.UpdatedAt = now, now
	return db.Write(ctx, func(tx *sql.Tx) error {
		return expectOne("tenant")(tx.Exec(`INSERT INTO workflows (id, tenant_id, name, event, url, secret_enc, secret_hint, created_at, updated_at)
			SELECT ?, id, ?, ?, ?, ?, ?, ?, ? FROM tenants WHERE id = ?`,
			w.ID, w.Name, w.Event, w.URL, w.SecretEnc, w.SecretHint, toMillis(now), toMillis(now), w.TenantID))
	})
}

// Workflow returns one workflow of a tenant. Errors: ENOTFOUND.
func (db *DB) Workflow(ctx context.Context, tenantID, id string) (*Workflow, error) {
	w, err := scanWorkflow(db.reader.QueryRowContext(ctx, `SELECT `+workflowColumns+` FROM workflows WHERE id = ? AND tenant_id = ?`, id, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "workflow not found")
	}
	return w, err
}

// Workflows returns one page of a tenant's workflows, oldest first, and the total count.
func (db *DB) Workflows(ctx context.Context, tenantID string, p Page) ([]*Workflow, int, error) {
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM workflows WHERE tenant_id = ?`, tenantID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT `+workflowColumns+` FROM workflows
		WHERE tenant_id = ? AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?`, tenantID, toMillis(p.AfterTime), p.AfterID, p.Limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []*Workflow{}
	for rows.Next() {
		w, err := scanWorkflow(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, w)
	}
	return out, total, rows.Err()
}

// UpdateWorkflow stores a workflow's changed fields (all but its ids and created_at).
// Errors: ENOTFOUND.
func (db *DB) UpdateWorkflow(ctx context.Context, w *Workflow) error {
	w.UpdatedAt = db.Now().UTC().Truncate(time.Millisecond)
	return db.Write(ctx, func(tx *sql.Tx) error {
		return expectOne("workflow")(tx.Exec(`UPDATE workflows SET name = ?, event = ?, url = ?, secret_enc = ?, secret_hint = ?, updated_at = ?
			WHERE id = ? AND tenant_id = ?`, w.Name, w.Event, w.URL, w.SecretEnc, w.SecretHint, toMillis(w.UpdatedAt), w.ID, w.TenantID))
	})
}

// DeleteWorkflow removes a workflow and its deliveries that have not been delivered (they have
// nowhere to go); delivered ones stay as history. Errors: ENOTFOUND.
func (db *DB) DeleteWorkflow(ctx context.Context, tenantID, id string) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		if err := expectOne("workflow")(tx.Exec(`DELETE FROM workflows WHERE id = ? AND tenant_id = ?`, id, tenantID)); err != nil {
			return err
		}
		_, err := tx.Exec(`DELETE FROM deliveries WHERE tenant_id = ? AND target = ? AND origin_id = ? AND status <> 'delivered'`,
			tenantID, domain.TargetWorkflow, id)
		return err
	})
}

const (
	qWorkflowsForEvent = `SELECT id FROM workflows WHERE tenant_id = ? AND event = ? ORDER BY created_at, id`
	qReleaseWaiting    = `UPDATE deliveries SET next_at = ?, reason = NULL, updated_at = ?
		WHERE tenant_id = ? AND subject = ? AND target = ? AND status = 'pending' AND reason = ?`
)

// WorkflowsForEvent returns the ids of a tenant's workflows triggered by event.
func (t *Tx) WorkflowsForEvent(tenantID, event string) ([]string, error) {
	rows, err := t.query(qWorkflowsForEvent, tenantID, event)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// InsertWorkflowDelivery adds a workflow delivery for subject (the subscriber's distinct id).
func (t *Tx) InsertWorkflowDelivery(now time.Time, d NewDelivery, subject string) (int64, error) {
	d.Target, d.Subject = domain.TargetWorkflow, subject
	return deliveryInserter{t.exec}.insert(now, d)
}

// ReleaseWaiting makes a tenant's workflow deliveries that wait for subject's identify due now
// and returns how many there were.
func (t *Tx) ReleaseWaiting(now time.Time, tenantID, subject string) (int64, error) {
	res, err := t.exec(qReleaseWaiting, toMillis(now), toMillis(now), tenantID, subject, domain.TargetWorkflow, domain.ReasonWaitingForUser)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
