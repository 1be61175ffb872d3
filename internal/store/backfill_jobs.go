package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Back-fill job statuses.
const (
	JobRunning     = "running"     // pulling pages from SparkPost
	JobProcessing  = "processing"  // every page stored; the inbox processor is still mapping them
	JobDone        = "done"        // every event stored (and, with forward, queued for Segment)
	JobFailed      = "failed"      // SparkPost refused or kept failing; see Error
	JobInterrupted = "interrupted" // the process stopped while the job ran; start a new one
)

// BackfillJob is one pull of SparkPost's Events API into a source. The API key is not part of
// it: it lives only in the memory of the job's goroutine.
type BackfillJob struct {
	ID       string
	TenantID string
	SourceID string
	From, To time.Time
	BaseURL  string
	Forward  bool
	Status   string
	Pages    int
	Fetched  int
	Total    int // SparkPost's total_count for the window (0 until the first page)
	Retries  int
	Batches  int    // inbox batches written
	Error    string // why the job failed or was interrupted
	// LastError is the last failed attempt at a page (retried or final), at LastErrorAt: a job
	// that retries shows why while it waits.
	LastError   string
	LastErrorAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	FinishedAt  time.Time

	// Read from the store by BackfillJob: what became of the fetched events.
	Stored      int // new to the store (the rest were there already, from webhooks or an earlier job)
	Queued      int // deliveries created for Segment
	Delivered   int // of which Segment has accepted
	Unprocessed int // batches the processor has not mapped yet
}

// BatchPrefix is the X-MessageSystems-Batch-ID prefix of the inbox batches a job writes.
func (j *BackfillJob) BatchPrefix() string { return "backfill:" + j.ID + ":" }

// CreateBackfillJob stores a new running job. Errors: ECONFLICT when the tenant has a job running.
func (db *DB) CreateBackfillJob(ctx context.Context, j *BackfillJob) error {
	now := db.Now().UTC().Truncate(time.Millisecond)
	j.Status, j.CreatedAt, j.UpdatedAt = JobRunning, now, now
	return db.Write(ctx, func(tx *sql.Tx) error {
		var running string
		// Only a job still pulling counts: one that waits for the processor holds nothing (and
		// after a restart nothing would ever move it on).
		err := tx.QueryRow(`SELECT id FROM backfill_jobs WHERE tenant_id = ? AND status = 'running' LIMIT 1`, j.TenantID).Scan(&running)
		if err == nil {
			return domain.Errorf(domain.ECONFLICT, "back-fill %s is still running for this tenant; wait for it to finish", running)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.Exec(`INSERT INTO backfill_jobs (id, tenant_id, source_id, from_ts, to_ts, base_url, forward, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, j.ID, j.TenantID, j.SourceID, toMillis(j.From), toMillis(j.To), j.BaseURL, j.Forward,
			j.Status, toMillis(now), toMillis(now))
		return err
	})
}

// UpdateBackfillJob records a job's progress and status.
func (db *DB) UpdateBackfillJob(ctx context.Context, j *BackfillJob) error {
	now := db.Now()
	j.UpdatedAt = now.UTC().Truncate(time.Millisecond)
	var finished any
	if j.Status == JobDone || j.Status == JobFailed || j.Status == JobInterrupted {
		if j.FinishedAt.IsZero() {
			j.FinishedAt = j.UpdatedAt
		}
		finished = toMillis(j.FinishedAt)
	}
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE backfill_jobs SET status = ?, pages = ?, fetched = ?, total = ?, retries = ?, batches = ?,
			error = NULLIF(?, ''), last_error = NULLIF(?, ''), last_error_at = NULLIF(?, 0), updated_at = ?, finished_at = ?
			WHERE id = ?`,
			j.Status, j.Pages, j.Fetched, j.Total, j.Retries, j.Batches, j.Error, j.LastError, toMillis(j.LastErrorAt),
			toMillis(now), finished, j.ID)
		return err
	})
}

// InterruptBackfillJobs marks every job still running as interrupted, with reason: called at
// start-up (a crashed process's jobs) and at shutdown. Jobs whose pages are all stored only
// wait for the processor, which picks their batches up after a restart: they are left alone.
func (db *DB) InterruptBackfillJobs(ctx context.Context, reason string) (int64, error) {
	var n int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		now := toMillis(db.Now())
		res, err := tx.Exec(`UPDATE backfill_jobs SET status = 'interrupted', error = ?, updated_at = ?, finished_at = ?
			WHERE status = 'running'`, reason, now, now)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// backfillColumns are the columns scanBackfillJob reads.
const backfillColumns = `id, tenant_id, source_id, from_ts, to_ts, base_url, forward, status, pages, fetched, COALESCE(total, 0),
	retries, batches, COALESCE(error, ''), COALESCE(last_error, ''), COALESCE(last_error_at, 0), created_at, updated_at,
	COALESCE(finished_at, 0)`

func scanBackfillJob(row interface{ Scan(...any) error }) (*BackfillJob, error) {
	var j BackfillJob
	var from, to, lastErrorAt, created, updated, finished int64
	var forward int
	if err := row.Scan(&j.ID, &j.TenantID, &j.SourceID, &from, &to, &j.BaseURL, &forward, &j.Status, &j.Pages, &j.Fetched,
		&j.Total, &j.Retries, &j.Batches, &j.Error, &j.LastError, &lastErrorAt, &created, &updated, &finished); err != nil {
		return nil, err
	}
	j.From, j.To, j.LastErrorAt = fromMillis(from), fromMillis(to), fromMillis(lastErrorAt)
	j.CreatedAt, j.UpdatedAt, j.FinishedAt = fromMillis(created), fromMillis(updated), fromMillis(finished)
	j.Forward = forward != 0
	return &j, nil
}

// BackfillJobByID returns a job of a tenant's source with what became of its events.
// Errors: ENOTFOUND.
func (db *DB) BackfillJobByID(ctx context.Context, tenantID, sourceID, id string) (*BackfillJob, error) {
	j, err := scanBackfillJob(db.reader.QueryRowContext(ctx, `SELECT `+backfillColumns+`
		FROM backfill_jobs WHERE id = ? AND tenant_id = ? AND source_id = ?`, id, tenantID, sourceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "back-fill job not found")
	} else if err != nil {
		return nil, err
	}
	if err := db.backfillOutcome(ctx, j); err != nil {
		return nil, err
	}
	return j, nil
}

// BackfillJobs returns one page of a tenant's jobs (of one source when sourceID is not empty),
// newest first, each with what became of its events, and how many jobs there are in all. The
// page's After is the last job of the previous page.
func (db *DB) BackfillJobs(ctx context.Context, tenantID, sourceID string, p Page) ([]*BackfillJob, int, error) {
	where, args := `tenant_id = ?`, []any{tenantID}
	if sourceID != "" {
		where, args = where+` AND source_id = ?`, append(args, sourceID)
	}
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM backfill_jobs WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	if p.AfterID != "" {
		where, args = where+` AND (created_at, id) < (?, ?)`, append(args, toMillis(p.AfterTime), p.AfterID)
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT `+backfillColumns+` FROM backfill_jobs WHERE `+where+`
		ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, p.Limit)...)
	if err != nil {
		return nil, 0, err
	}
	out := []*BackfillJob{}
	for rows.Next() {
		j, err := scanBackfillJob(rows)
		if err != nil {
			rows.Close()
			return nil, 0, err
		}
		out = append(out, j)
	}
	// The rows are closed before the outcome queries, so that a page holds one connection at a time.
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, 0, err
	}
	for _, j := range out {
		if err := db.backfillOutcome(ctx, j); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// backfillOutcome counts the job's events through its inbox batches (batch ids with its prefix).
func (db *DB) backfillOutcome(ctx context.Context, j *BackfillJob) error {
	lo, hi := j.BatchPrefix(), "backfill:"+j.ID+";" // ';' sorts right after ':'
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM inbox WHERE source_id = ? AND batch_id >= ? AND batch_id < ?
		AND processed_at IS NULL`, j.SourceID, lo, hi).Scan(&j.Unprocessed); err != nil {
		return err
	}
	return db.reader.QueryRowContext(ctx, `SELECT COUNT(e.id), COUNT(d.id), COUNT(*) FILTER (WHERE d.status = 'delivered')
		FROM inbox i JOIN email_events e ON e.inbox_id = i.id LEFT JOIN deliveries d ON d.ref_id = e.id AND d.target = 'segment'
		WHERE i.source_id = ? AND i.batch_id >= ? AND i.batch_id < ?`, j.SourceID, lo, hi).Scan(&j.Stored, &j.Queued, &j.Delivered)
}

// AddStoredBatch stores a batch and its already-parsed events without handing them to the
// processor: the back-fill path for events that are to be kept but not sent. The batch is
// written as processed, so the processor never sees it; the events go through CommitProcessed
// like any others (deduplicated by event_id). duplicate reports a batch id seen before.
func (db *DB) AddStoredBatch(ctx context.Context, p *ProcessedBatch) (duplicate bool, err error) {
	b := p.Batch
	b.ReceivedAt = db.Now().UTC()
	err = db.Write(ctx, func(tx *sql.Tx) (err error) {
		duplicate, err = insertBatch(tx, b, toMillis(b.ReceivedAt), len(p.Events))
		return err
	})
	if err != nil || duplicate {
		return duplicate, err
	}
	return false, db.CommitProcessed(ctx, p)
}
