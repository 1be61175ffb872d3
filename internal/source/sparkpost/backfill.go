package sparkpost

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// BackfillRequest asks for a back-fill of one source.
type BackfillRequest struct {
	TenantID string
	SourceID string
	From, To time.Time // To zero: now
	APIKey   string
	BaseURL  string // "": DefaultBaseURL
	Forward  bool   // send the events that are new to the store on to Segment
}

// BackfillStore is what back-fill needs of a store (package store's *DB is one): the jobs,
// the source they fill, and the writes that store what a job fetched.
type BackfillStore interface {
	Now() time.Time
	Source(ctx context.Context, tenantID, id string) (*store.Source, error)
	CreateBackfillJob(ctx context.Context, j *store.BackfillJob) error
	BackfillJobByID(ctx context.Context, tenantID, sourceID, id string) (*store.BackfillJob, error)
	UpdateBackfillJob(ctx context.Context, j *store.BackfillJob) error
	InterruptBackfillJobs(ctx context.Context, reason string) (int64, error)
	AddBatch(ctx context.Context, b *store.InboxBatch) (duplicate bool, err error)
	AddStoredBatch(ctx context.Context, p *store.ProcessedBatch) (duplicate bool, err error)
}

// BackfillRunner runs back-fill jobs, each in a goroutine of its own, until Close.
type BackfillRunner struct {
	db  BackfillStore
	log *slog.Logger

	// HTTP calls SparkPost: through the outbound guard, redirects not followed, a 2-minute
	// timeout per page.
	HTTP *http.Client
	// guard decides which base URLs a job may use besides SparkPost's own.
	guard *outbound.Guard
	// Wake tells the inbox processor that batches wait (forwarded jobs go through it).
	Wake func()
	// Backoff says how long to wait before retry attempt n (BackfillBackoff).
	Backoff func(attempt int, retryAfter time.Duration) time.Duration
	// MaxAttempts bounds the tries of one page in a row (default 10).
	MaxAttempts int
	// PerPage is the Events API page size (default and maximum 10,000).
	PerPage int
	// BatchSize is how many events go into one inbox batch (default 1,000: a webhook batch).
	BatchSize int
	// Poll is how often a forwarding job looks whether the processor is through its batches.
	Poll time.Duration

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	running bool
}

// NewBackfillRunner returns a runner connecting through guard; Start runs it.
func NewBackfillRunner(db BackfillStore, guard *outbound.Guard, log *slog.Logger) *BackfillRunner {
	return &BackfillRunner{db: db, log: log, guard: guard, Backoff: BackfillBackoff,
		HTTP:        guard.Client(outbound.ClientConfig{Timeout: 2 * time.Minute, BodyLimit: maxPageBytes + 1}),
		MaxAttempts: 10, PerPage: 10000, BatchSize: 1000, Poll: 500 * time.Millisecond}
}

// Start marks the jobs a previous process left running as interrupted (their API keys died
// with it) and accepts new jobs until Close.
func (r *BackfillRunner) Start(ctx context.Context) error {
	if _, err := r.db.InterruptBackfillJobs(ctx, "Switchboard restarted while the job ran; start a new back-fill (the events stored so far are kept)"); err != nil {
		return err
	}
	r.mu.Lock()
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.running = true
	r.mu.Unlock()
	return nil
}

// Close stops every job (they are marked interrupted) and waits for them, at most until ctx ends.
func (r *BackfillRunner) Close(ctx context.Context) error {
	r.mu.Lock()
	r.running = false
	cancel := r.cancel
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready fails when the runner is not accepting jobs.
func (r *BackfillRunner) Ready(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		return errors.New("back-fill runner is not running")
	}
	return nil
}

// Validate checks a request and fills its defaults. Errors: EINVALID naming the field.
func (req *BackfillRequest) Validate(now time.Time, guard *outbound.Guard) error {
	if req.From.IsZero() {
		return domain.Errorf(domain.EINVALID, "from: is required")
	}
	if req.To.IsZero() || req.To.After(now) {
		req.To = now
	}
	req.From, req.To = req.From.Truncate(time.Millisecond), req.To.Truncate(time.Millisecond) // as stored
	oldest := now.Add(-EventsAPIRetention)
	if req.From.Before(oldest) {
		return domain.Errorf(domain.EINVALID, "from: SparkPost keeps events for 10 days; from must be after %s", oldest.UTC().Format(time.RFC3339))
	}
	if !req.To.After(req.From) {
		return domain.Errorf(domain.EINVALID, "to: must be after from (and from must not be in the future)")
	}
	key := strings.TrimSpace(req.APIKey)
	if key == "" {
		return domain.Errorf(domain.EINVALID, "api_key: is required (a SparkPost API key with the Events Search: Read-only permission)")
	}
	if len(key) > 200 || strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return domain.Errorf(domain.EINVALID, "api_key: must be a SparkPost API key (no spaces or control characters)")
	}
	req.APIKey = key
	base, err := checkBaseURL(req.BaseURL, guard)
	if err != nil {
		return err
	}
	req.BaseURL = base
	return nil
}

// sparkpostHosts are SparkPost's Events API hosts (US and EU).
var sparkpostHosts = []string{"api.sparkpost.com", "api.eu.sparkpost.com"}

// checkBaseURL accepts SparkPost's API hosts over https, and any other host only when the
// operator allowed its address with SWITCHBOARD_OUTBOUND_ALLOW (a local stand-in, a proxy of
// one's own): the job sends the tenant's SparkPost API key there, and its answers become the
// tenant's events.
func checkBaseURL(v string, guard *outbound.Guard) (string, error) {
	if v == "" {
		return DefaultBaseURL, nil
	}
	u, err := url.Parse(strings.TrimSpace(v))
	bad := domain.Errorf(domain.EINVALID, "base_url: must be SparkPost's API address, %s or %s", DefaultBaseURL, EUBaseURL)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", bad
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case slices.Contains(sparkpostHosts, host):
		if u.Scheme != "https" {
			return "", domain.Errorf(domain.EINVALID, "base_url: must be https (the API key must not cross a network in the clear)")
		}
	case guard.Allows(host):
	default:
		if err := guard.CheckURL("base_url", u.String()); err != nil {
			return "", err
		}
		return "", domain.Errorf(domain.EINVALID, "base_url: must be SparkPost's API address, %s or %s (another host only when the operator allows its address with %s)",
			DefaultBaseURL, EUBaseURL, outbound.AllowEnv)
	}
	// SparkPost's own address is the host; /api/v1 is part of every path it links to.
	path := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v1")
	return u.Scheme + "://" + u.Host + path, nil
}

// Submit validates req, records the job and starts it. Errors: EINVALID, ENOTFOUND (source),
// ECONFLICT (the tenant has a job running), EUNAVAILABLE (shutting down).
func (r *BackfillRunner) Submit(ctx context.Context, req BackfillRequest) (*store.BackfillJob, error) {
	if err := req.Validate(r.db.Now(), r.guard); err != nil {
		return nil, err
	}
	src, err := r.db.Source(ctx, req.TenantID, req.SourceID)
	if err != nil {
		return nil, err
	}
	if src.Provider != domain.ProviderSparkPost {
		return nil, domain.Errorf(domain.EINVALID, "source: back-fill reads SparkPost's Events API; this is a %s source", src.Provider)
	}
	// Counted under the lock, so that Close either waits for this job or refuses it.
	r.mu.Lock()
	jobCtx, running := r.ctx, r.running
	if running {
		r.wg.Add(1)
	}
	r.mu.Unlock()
	if !running {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "back-fill is not running in this process; try again shortly")
	}
	j := &store.BackfillJob{ID: domain.NewID("bf_"), TenantID: req.TenantID, SourceID: req.SourceID, From: req.From.UTC(),
		To: req.To.UTC(), BaseURL: req.BaseURL, Forward: req.Forward}
	if err := r.db.CreateBackfillJob(ctx, j); err != nil {
		r.wg.Done()
		return nil, err
	}
	base, _ := url.Parse(req.BaseURL)
	c := &client{http: r.HTTP, base: base, key: req.APIKey, maxAttempts: r.MaxAttempts, backoff: r.Backoff}
	snapshot := *j // the job's goroutine owns j from here on
	go func() {
		defer r.wg.Done()
		r.run(jobCtx, j, c)
	}()
	return &snapshot, nil
}

// run pulls every page of the job's window, then (forwarding) waits for the processor.
func (r *BackfillRunner) run(ctx context.Context, j *store.BackfillJob, c *client) {
	log := r.log.With("job_id", j.ID, "tenant_id", j.TenantID, "source_id", j.SourceID)
	log.Info("back-fill started", "from", j.From, "to", j.To, "forward", j.Forward, "base_url", j.BaseURL)
	// Called from pull, on this goroutine. A retry is recorded at once: the wait before it can be
	// minutes, and the job must not look stuck meanwhile.
	c.failed = func(err error, retrying bool) error {
		j.LastError, j.LastErrorAt = err.Error(), r.db.Now()
		if !retrying {
			return nil // recorded as the job ends
		}
		j.Retries++
		log.Warn("back-fill: retrying a page", "retries", j.Retries, "error", j.LastError)
		return r.db.UpdateBackfillJob(ctx, j)
	}
	err := r.pull(ctx, j, c)
	// The job's record is written even when ctx was cancelled by Close.
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch {
	case ctx.Err() != nil:
		j.Status, j.Error = store.JobInterrupted, "Switchboard stopped while the job ran; start a new back-fill (the events stored so far are kept)"
	case err != nil:
		j.Status, j.Error = store.JobFailed, err.Error()
	case j.Forward:
		j.Status = store.JobProcessing
	default:
		j.Status = store.JobDone
	}
	if uerr := r.db.UpdateBackfillJob(wctx, j); uerr != nil {
		log.Error("back-fill: recording the job", "error", uerr.Error())
	}
	if j.Status == store.JobProcessing {
		r.awaitProcessor(ctx, j, log)
	}
	log.Info("back-fill ended", "status", j.Status, "pages", j.Pages, "fetched", j.Fetched, "retries", j.Retries, "error", j.Error)
}

// pull fetches the pages and stores each before asking for the next.
func (r *BackfillRunner) pull(ctx context.Context, j *store.BackfillJob, c *client) error {
	u := c.firstPage(j.From, j.To, r.PerPage)
	for {
		p, err := c.get(ctx, u)
		if err != nil {
			return err
		}
		if err := r.store(ctx, j, p); err != nil {
			return err
		}
		j.Pages++
		j.Fetched += len(p.Results)
		if j.Pages == 1 {
			j.Total = p.TotalCount
		}
		if err := r.db.UpdateBackfillJob(ctx, j); err != nil {
			return err
		}
		next := p.next()
		if next == "" || len(p.Results) == 0 {
			return nil
		}
		if u, err = c.resolve(next); err != nil {
			return err
		}
	}
}

// store writes one page as webhook-shaped batches of BatchSize events. Forwarded batches go to
// the inbox for the processor, exactly as a webhook's; the others are stored as processed with
// every event marked not sent.
func (r *BackfillRunner) store(ctx context.Context, j *store.BackfillJob, p *page) error {
	for start := 0; start < len(p.Results); start += r.BatchSize {
		end := min(start+r.BatchSize, len(p.Results))
		var body bytes.Buffer
		body.WriteByte('[')
		for i, res := range p.Results[start:end] {
			if i > 0 {
				body.WriteByte(',')
			}
			body.Write(NormalizeEventsAPI(res))
		}
		body.WriteByte(']')
		b := &store.InboxBatch{TenantID: j.TenantID, SourceID: j.SourceID, BatchID: j.BatchPrefix() + strconv.Itoa(j.Batches+1), Body: body.Bytes()}
		if j.Forward {
			if _, err := r.db.AddBatch(ctx, b); err != nil {
				return err
			}
			if r.Wake != nil {
				r.Wake()
			}
		} else if _, err := r.db.AddStoredBatch(ctx, source.Batch(Provider, b, domain.SourceSettings{}, "back-filled without forward")); err != nil {
			return err
		}
		j.Batches++
	}
	return nil
}

// awaitProcessor waits until the processor has mapped every batch of the job, then marks it
// done. Stopped meanwhile, the job stays "processing": its batches are in the inbox and are
// mapped after a restart, and reading the job then shows it done.
func (r *BackfillRunner) awaitProcessor(ctx context.Context, j *store.BackfillJob, log *slog.Logger) {
	t := time.NewTicker(r.Poll)
	defer t.Stop()
	for {
		cur, err := r.db.BackfillJobByID(ctx, j.TenantID, j.SourceID, j.ID)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("back-fill: reading progress", "error", err.Error())
			}
			return
		}
		if cur.Unprocessed == 0 {
			j.Status = store.JobDone
			if err := r.db.UpdateBackfillJob(ctx, j); err != nil && ctx.Err() == nil {
				log.Error("back-fill: recording the job", "error", err.Error())
			}
			return
		}
		if r.Wake != nil {
			r.Wake()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
