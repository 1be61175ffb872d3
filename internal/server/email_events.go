package server

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
	"github.com/switchboard-hub/switchboard/internal/store"
	"github.com/switchboard-hub/switchboard/internal/web"
)

// How email-events reads are bounded (SPEC §9: a reader that stops reading never holds a
// database connection; large reads and exports are capped per tenant and in bytes per page).
const (
	// DefaultEventReadsPerTenant is how many email-events reads (JSON pages and CSV exports) one
	// tenant may run at once.
	DefaultEventReadsPerTenant = 2
	// DefaultEventWriteTimeout is how long one write of an email-events answer may wait for a
	// client that does not read before the answer is cut off.
	DefaultEventWriteTimeout = 30 * time.Second
	// eventReadRetryAfter is the Retry-After of a read refused for being past a cap, in seconds.
	eventReadRetryAfter = 5

	// writePiece is how much of a JSON page is buffered before it goes to the client (one
	// write, with a deadline of its own).
	writePiece = 64 << 10
)

// EventReadLimits bounds the reads of GET …/email-events and …/email-events.csv. Zero fields take
// the defaults.
type EventReadLimits struct {
	// PerTenant caps one tenant's concurrent reads (DefaultEventReadsPerTenant).
	PerTenant int
	// Global caps all tenants' concurrent reads together. The default is one less than the
	// store's read pool: each read uses at most one read connection at a time, so hooks, the
	// admin API and /readyz always find one.
	Global int
	// WriteTimeout is how long one write to the client may block (DefaultEventWriteTimeout);
	// a client that reads nothing for that long is cut off.
	WriteTimeout time.Duration
	// PageBytes caps a JSON page (MaxPageBytes): a page ends early, with links.next, before
	// the event that would take it past the cap.
	PageBytes int
}

// eventReads admits email-events reads within the caps of EventReadLimits.
type eventReads struct {
	EventReadLimits
	inFlight prometheus.Gauge

	mu       sync.Mutex
	running  int
	byTenant map[string]int
}

func newEventReads(l EventReadLimits, db *store.DB, reg prometheus.Registerer) *eventReads {
	if l.PerTenant <= 0 {
		l.PerTenant = DefaultEventReadsPerTenant
	}
	if l.Global <= 0 {
		l.Global = 3 // the default pool has 4 connections
		if db != nil {
			l.Global = max(db.Reader().Stats().MaxOpenConnections-1, 1)
		}
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultEventWriteTimeout
	}
	if l.PageBytes <= 0 {
		l.PageBytes = sparkpost.MaxPageBytes
	}
	r := &eventReads{EventReadLimits: l, byTenant: map[string]int{},
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_email_event_reads_in_flight",
			Help: "email-events pages and CSV exports being read or written now.",
		})}
	reg.MustRegister(r.inFlight)
	return r
}

// enter takes a place for one read of the tenant, or says which cap is reached (ETOOMANY).
// release gives the place back.
func (r *eventReads) enter(tenantID string) (release func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.byTenant[tenantID] >= r.PerTenant:
		return nil, domain.Errorf(domain.ETOOMANY, "this tenant already runs %d email-events reads (exports and pages) at once, the most it may; retry when one has finished", r.PerTenant)
	case r.running >= r.Global:
		return nil, domain.Errorf(domain.ETOOMANY, "the server runs %d email-events reads (exports and pages) at once, the most it allows; retry shortly", r.Global)
	}
	r.running++
	r.byTenant[tenantID]++
	r.inFlight.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.running--
			if r.byTenant[tenantID]--; r.byTenant[tenantID] == 0 {
				delete(r.byTenant, tenantID)
			}
			r.inFlight.Dec()
		})
	}, nil
}

// admitEventRead takes a read place for the request's tenant, or answers 429 with Retry-After.
func (s *Server) admitEventRead(c *gin.Context) (release func(), ok bool) {
	release, err := s.eventReads.enter(tenantOf(c).ID)
	if err != nil {
		c.Header("Retry-After", strconv.Itoa(eventReadRetryAfter))
		s.fail(c, err)
		return nil, false
	}
	return release, true
}

// listEmailEvents answers GET …/email-events: one page of stored SparkPost events, newest
// first, with SparkPost's Events API filters and answer shape (SPEC §5.5). The page is read in
// chunks and streamed: each chunk's rows are closed before it is written, every write has a
// deadline, and the page ends early (with links.next) rather than pass PageBytes. A failure
// before the first bytes left is an error answer; after them the connection is cut, so that a
// client never takes a short page for a whole one.
func (s *Server) listEmailEvents(c *gin.Context) {
	q, err := query(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	eq, err := sparkpost.ParseEventQuery(q, false)
	if err != nil {
		s.fail(c, err)
		return
	}
	release, ok := s.admitEventRead(c)
	if !ok {
		return
	}
	defer release()
	ctx := c.Request.Context()
	f := eq.Filter
	f.TenantID = tenantOf(c).ID
	total, err := s.DB.CountEmailEvents(ctx, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(http.StatusOK)
	dw := s.deadlineWriter(c)
	defer dw.done()
	w := bufio.NewWriterSize(dw, writePiece)
	w.WriteString(`{"results":[`)
	next, err := sparkpost.WriteEventPage(ctx, s.DB, f, s.eventReads.PageBytes, w)
	if err == nil {
		buf := make([]byte, 0, 512)
		buf = append(buf, `],"total_count":`...)
		buf = strconv.AppendInt(buf, int64(total), 10)
		buf = append(buf, `,"links":{`...)
		if next != "" {
			q.Set("cursor", next)
			buf = append(buf, `"next":`...)
			buf = source.AppendString(buf, (&url.URL{Path: c.Request.URL.Path, RawQuery: q.Encode()}).String())
		}
		buf = append(buf, "}}"...)
		w.Write(buf)
		err = w.Flush()
	}
	var werr *clientWriteError
	switch {
	case err == nil:
	case errors.As(err, &werr):
		s.clientGone(c, "email-events", werr.err)
		panic(http.ErrAbortHandler)
	case !c.Writer.Written():
		s.fail(c, err) // nothing has left yet: the buffered start of the page is dropped
	default:
		if ctx.Err() == nil {
			s.Log.Error("email-events", "request_id", web.RequestID(ctx), "error", err.Error())
		}
		panic(http.ErrAbortHandler)
	}
}

// exportEmailEvents answers GET …/email-events.csv: every event the filters select, streamed as
// CSV in constant memory. X-Total-Count says how many rows follow the header. The events are
// read in chunks and written with no database connection held, each write with a deadline, so
// a client that stops reading is cut off instead of waited on. A failure after the first bytes
// cannot become an error status any more: the connection is cut, so that a client never takes
// a short file for a whole one.
func (s *Server) exportEmailEvents(c *gin.Context) {
	q, err := query(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	eq, err := sparkpost.ParseEventQuery(q, true)
	if err != nil {
		s.fail(c, err)
		return
	}
	release, ok := s.admitEventRead(c)
	if !ok {
		return
	}
	defer release()
	ctx := c.Request.Context()
	eq.Filter.TenantID = tenantOf(c).ID
	total, err := s.DB.CountEmailEvents(ctx, eq.Filter)
	if err != nil {
		s.fail(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="email-events.csv"`)
	h.Set("X-Total-Count", strconv.Itoa(total))
	c.Status(http.StatusOK)
	w := s.deadlineWriter(c)
	defer w.done()
	if _, err := sparkpost.WriteEventsCSV(ctx, s.DB, eq, w, nil); err != nil {
		var werr *clientWriteError
		switch {
		case errors.As(err, &werr):
			s.clientGone(c, "email-events.csv", werr.err)
		case ctx.Err() == nil:
			s.Log.Error("email-events.csv", "request_id", web.RequestID(ctx), "error", err.Error())
		}
		panic(http.ErrAbortHandler)
	}
}

// clientGone logs an answer cut off because its client stopped reading (or went away).
func (s *Server) clientGone(c *gin.Context, what string, err error) {
	s.Log.Warn(what+": the client stopped reading; answer cut off", "request_id", web.RequestID(c.Request.Context()),
		"tenant_id", tenantOf(c).ID, "error", err.Error())
}

// query parses the query string strictly: Go drops a parameter holding a raw ";" without a word,
// which would quietly widen a search.
func query(c *gin.Context) (url.Values, error) {
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "query: cannot be read (%v); percent-encode ; as %%3B", err)
	}
	return q, nil
}

// clientWriteError is a write to the client that failed (deadline passed, connection gone), as
// opposed to a failure to read the store.
type clientWriteError struct{ err error }

func (e *clientWriteError) Error() string { return "writing to the client: " + e.err.Error() }
func (e *clientWriteError) Unwrap() error { return e.err }

// deadlineWriter gives every write to the client a deadline of its own: the server's
// WriteTimeout suits API answers, not a file of millions of rows, and a client that stops
// reading must be cut off soon rather than hold its place (and its memory) for minutes.
type deadlineWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *Server) deadlineWriter(c *gin.Context) *deadlineWriter {
	return &deadlineWriter{w: c.Writer, rc: http.NewResponseController(c.Writer), timeout: s.eventReads.WriteTimeout}
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout)) // not every writer supports deadlines; then there is none to move
	n, err := d.w.Write(p)
	if err != nil {
		return n, &clientWriteError{err: err}
	}
	return n, nil
}

// done sends what is buffered, still under the deadline, then lifts the deadline: on a
// kept-alive connection it would otherwise outlive this answer and cut a later one.
func (d *deadlineWriter) done() {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	d.rc.Flush()
	d.rc.SetWriteDeadline(time.Time{})
}
