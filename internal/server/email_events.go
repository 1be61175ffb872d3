package server

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
	"github.com/switchboard-hub/switchboard/internal/web"
)

// listEmailEvents answers GET …/email-events: one page of stored SparkPost events, newest
// first, with SparkPost's Events API filters and answer shape (SPEC §5.5).
func (s *Server) listEmailEvents(c *gin.Context) {
	q, err := query(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	eq, err := ParseEventQuery(q, false)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	f := eq.Filter
	f.TenantID = tenantOf(c).ID
	total, err := s.DB.CountEmailEvents(ctx, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	perPage := f.Limit
	f.Limit = perPage + 1 // one more tells whether there is a next page
	buf := make([]byte, 0, 64<<10)
	buf = append(buf, `{"results":[`...)
	n := 0
	var lastTime time.Time
	var lastID int64
	err = s.DB.EachEmailEvent(ctx, f, func(e *store.EmailEvent) error {
		if n++; n > perPage {
			return nil
		}
		if n > 1 {
			buf = append(buf, ',')
		}
		buf = appendEventJSON(buf, e)
		lastTime, lastID = e.Time, e.ID
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	buf = append(buf, `],"total_count":`...)
	buf = strconv.AppendInt(buf, int64(total), 10)
	buf = append(buf, `,"links":{`...)
	if n > perPage {
		q.Set("cursor", encodeEventCursor(lastTime, lastID))
		buf = append(buf, `"next":`...)
		buf = appendJSONString(buf, (&url.URL{Path: c.Request.URL.Path, RawQuery: q.Encode()}).String())
	}
	buf = append(buf, "}}"...)
	c.Data(http.StatusOK, "application/json; charset=utf-8", buf)
}

// exportEmailEvents answers GET …/email-events.csv: every event the filters select, streamed as
// CSV in constant memory. X-Total-Count says how many rows follow the header. A failure after
// the first bytes cannot become an error status any more: the connection is cut, so that a
// client never takes a short file for a whole one.
func (s *Server) exportEmailEvents(c *gin.Context) {
	q, err := query(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	eq, err := ParseEventQuery(q, true)
	if err != nil {
		s.fail(c, err)
		return
	}
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
	w := &deadlineWriter{w: c.Writer, rc: http.NewResponseController(c.Writer)}
	if _, err := WriteEventsCSV(ctx, s.DB, eq, w, nil); err != nil {
		if ctx.Err() == nil {
			s.Log.Error("email-events.csv", "request_id", web.RequestID(ctx), "error", err.Error())
		}
		panic(http.ErrAbortHandler)
	}
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

// deadlineWriter keeps pushing the connection's write deadline ahead while an export streams:
// the server's WriteTimeout suits API answers, not a file of millions of rows.
type deadlineWriter struct {
	w        io.Writer
	rc       *http.ResponseController
	extended time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(d.extended) > 5*time.Second {
		d.rc.SetWriteDeadline(now.Add(time.Minute)) // not every writer supports deadlines; then there is none to move
		d.extended = now
	}
	return d.w.Write(p)
}
