package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// eventCursor is the opaque cursor of email-events: the (time, id) of the last event returned.
type eventCursor struct {
	T  int64 `json:"t"`
	ID int64 `json:"id"`
}

// splitList reads a comma-separated filter.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseTime reads an ISO-8601 time for the named parameter.
func parseTime(name, v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, domain.Errorf(domain.EINVALID, "%s: %q is not an ISO-8601 time such as 2024-05-01T00:00:00Z", name, v)
}

// emailEventFilters are the query parameters email-events understands (more come with the full
// query language).
var emailEventFilters = []string{"events", "recipients", "from", "to", "per_page", "cursor"}

func (s *Server) listEmailEvents(c *gin.Context) {
	q := c.Request.URL.Query()
	for k := range q {
		if !slices.Contains(emailEventFilters, k) {
			s.fail(c, domain.Errorf(domain.EINVALID, "%s: unknown parameter (known: %s)", k, strings.Join(emailEventFilters, ", ")))
			return
		}
	}
	f := store.EventFilter{TenantID: tenantOf(c).ID, Types: splitList(q.Get("events")), Recipients: splitList(q.Get("recipients")), Limit: 1000}
	var err error
	if v := q.Get("from"); v != "" {
		if f.From, err = parseTime("from", v); err != nil {
			s.fail(c, err)
			return
		}
	}
	if v := q.Get("to"); v != "" {
		if f.To, err = parseTime("to", v); err != nil {
			s.fail(c, err)
			return
		}
	}
	if v := q.Get("per_page"); v != "" {
		var n int
		if err := json.Unmarshal([]byte(v), &n); err != nil || n < 1 || n > 10000 {
			s.fail(c, domain.Errorf(domain.EINVALID, "per_page: must be a whole number from 1 to 10000"))
			return
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		var cur eventCursor
		if err != nil || json.Unmarshal(raw, &cur) != nil || cur.ID <= 0 {
			s.fail(c, domain.Errorf(domain.EINVALID, "cursor: not a cursor this server issued; use links.next as given"))
			return
		}
		f.BeforeTime, f.BeforeID = time.UnixMilli(cur.T), cur.ID
	}
	events, total, err := s.DB.EmailEvents(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	results := make([]json.RawMessage, 0, len(events))
	for _, e := range events {
		results = append(results, flatten(e))
	}
	body := ListBody{Results: results, TotalCount: total}
	if n := len(events); n == f.Limit {
		last := events[n-1]
		b, _ := json.Marshal(eventCursor{T: last.Time.UnixMilli(), ID: last.ID})
		q.Set("cursor", base64.RawURLEncoding.EncodeToString(b))
		body.Links.Next = c.Request.URL.Path + "?" + q.Encode()
	}
	c.JSON(http.StatusOK, body)
}

// flatten renders a stored event as SparkPost's Events API does (its own fields, plus type and
// class) with Switchboard's own status under "switchboard".
func flatten(e *store.EmailEvent) json.RawMessage {
	var fields map[string]json.RawMessage
	if json.Unmarshal(e.Body, &fields) != nil || fields == nil {
		fields = map[string]json.RawMessage{"raw": json.RawMessage(mustJSON(string(e.Body)))}
	}
	if _, ok := fields["type"]; !ok {
		fields["type"] = mustJSON(e.Type)
	}
	fields["class"] = mustJSON(strings.TrimSuffix(e.Wrapper, "_event"))
	fields["event_id"] = mustJSON(e.EventID)
	status := e.Status
	if status == store.EventQueued && e.DeliveryStatus != "" {
		status = e.DeliveryStatus
		if status == store.StatusSending {
			status = store.StatusPending
		}
	}
	sw := map[string]any{"status": status, "message_id": nilIfEmpty(e.SegmentMessageID), "delivered_at": nil}
	if !e.DeliveredAt.IsZero() {
		sw["delivered_at"] = e.DeliveredAt
	}
	if e.Reason != "" {
		sw["reason"] = e.Reason
	}
	fields["switchboard"] = mustJSON(sw)
	b, _ := json.Marshal(fields)
	return b
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
