package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// backfillIn is the body of POST …/sources/{sid}/backfill.
type backfillIn struct {
	From    *string `json:"from"`
	To      *string `json:"to"`
	APIKey  *string `json:"api_key"`
	BaseURL *string `json:"base_url"`
	Forward *bool   `json:"forward"`
}

// backfillOut is a job as the API shows it. The API key is never part of it.
type backfillOut struct {
	ID          string     `json:"id"`
	SourceID    string     `json:"source_id"`
	Status      string     `json:"status"`
	From        time.Time  `json:"from"`
	To          time.Time  `json:"to"`
	BaseURL     string     `json:"base_url"`
	Forward     bool       `json:"forward"`
	Pages       int        `json:"pages"`
	Fetched     int        `json:"fetched"`
	TotalCount  int        `json:"total_count"`
	Stored      int        `json:"stored"`
	Duplicates  *int       `json:"duplicates"`
	Forwarded   int        `json:"forwarded"`
	Delivered   int        `json:"delivered"`
	Unprocessed int        `json:"unprocessed_batches"`
	Retries     int        `json:"retries"`
	Error       string     `json:"error,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	FinishedAt  *time.Time `json:"finished_at"`
}

func backfillBody(j *store.BackfillJob) backfillOut {
	out := backfillOut{
		ID: j.ID, SourceID: j.SourceID, Status: j.Status, From: j.From, To: j.To, BaseURL: j.BaseURL, Forward: j.Forward,
		Pages: j.Pages, Fetched: j.Fetched, TotalCount: j.Total, Stored: j.Stored, Forwarded: j.Queued, Delivered: j.Delivered,
		Unprocessed: j.Unprocessed, Retries: j.Retries, Error: j.Error, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt,
	}
	if !j.FinishedAt.IsZero() {
		out.FinishedAt = &j.FinishedAt
	}
	if j.LastError != "" {
		out.LastError, out.LastErrorAt = j.LastError, &j.LastErrorAt
	}
	// A forwarding job whose pages are all stored is done once the processor has mapped them;
	// after a restart nothing else records that.
	if j.Status == store.JobProcessing && j.Unprocessed == 0 {
		out.Status = store.JobDone
	}
	if j.Unprocessed == 0 && j.Status != store.JobRunning {
		d := max(j.Fetched-j.Stored, 0)
		out.Duplicates = &d
	}
	return out
}

// startBackfill answers POST …/sources/{sid}/backfill: 202 with the job, which then pulls the
// window from SparkPost's Events API in the background (GET …/backfill/{job_id} for progress).
func (s *Server) startBackfill(c *gin.Context) {
	var in backfillIn
	if !s.decode(c, &in) {
		return
	}
	req := sparkpost.BackfillRequest{TenantID: tenantOf(c).ID, SourceID: c.Param("sid"), Forward: in.Forward != nil && *in.Forward}
	var err error
	if in.From != nil {
		if req.From, err = domain.ParseTime("from", *in.From, time.UTC); err != nil {
			s.fail(c, err)
			return
		}
	}
	if in.To != nil {
		if req.To, err = domain.ParseTime("to", *in.To, time.UTC); err != nil {
			s.fail(c, err)
			return
		}
	}
	if in.APIKey != nil {
		req.APIKey = *in.APIKey
	}
	if in.BaseURL != nil {
		req.BaseURL = *in.BaseURL
	}
	if err := req.Validate(s.DB.Now(), s.Outbound); err != nil {
		s.fail(c, err)
		return
	}
	runner := s.Sources.Backfill
	if runner == nil {
		s.fail(c, domain.Errorf(domain.EUNAVAILABLE, "back-fill is not running in this process; try again shortly"))
		return
	}
	j, err := runner.Submit(c.Request.Context(), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", c.Request.URL.Path+"/"+j.ID)
	c.PureJSON(http.StatusAccepted, backfillBody(j))
}

// getBackfill answers GET …/sources/{sid}/backfill/{job_id}: the job's progress and what became
// of the events it fetched.
func (s *Server) getBackfill(c *gin.Context) {
	j, err := s.DB.BackfillJobByID(c.Request.Context(), tenantOf(c).ID, c.Param("sid"), c.Param("job_id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, backfillBody(j))
}

// listBackfills answers GET …/backfills: the tenant's jobs, newest first, each as GET
// …/backfill/{job_id} shows it; ?source_id= keeps one source's.
func (s *Server) listBackfills(c *gin.Context) {
	p, err := pageOf(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	jobs, total, err := s.DB.BackfillJobs(c.Request.Context(), tenantOf(c).ID, c.Query("source_id"), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]backfillOut, len(jobs))
	for i, j := range jobs {
		out[i] = backfillBody(j)
	}
	body := ListBody{Results: out, TotalCount: total}
	if n := len(jobs); n > 0 {
		body.Links.Next = nextLink(c, p, n, jobs[n-1].CreatedAt, jobs[n-1].ID)
	}
	c.PureJSON(http.StatusOK, body)
}
