package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// maxDistinctID bounds the :distinct_id path parameter; longer ids are never stored.
const maxDistinctID = 1024

// listUsers answers GET …/users: profiles oldest first, optionally only those with a channel
// value (?email=, ?phone= or ?channel_value=, at most one).
func (h *destHandlers) listUsers(c *gin.Context) {
	p, err := pageOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	f, err := destination.UserFilter{
		Email: c.Query("email"), Phone: c.Query("phone"), ChannelValue: c.Query("channel_value"),
	}.StoreFilter(tenantOf(c).ID)
	if err != nil {
		h.fail(c, err)
		return
	}
	rows, total, err := h.s.DB.Profiles(c.Request.Context(), f, p)
	if err != nil {
		h.fail(c, err)
		return
	}
	results := make([]json.RawMessage, len(rows))
	for i, r := range rows {
		results[i] = r.Body
	}
	body := ListBody{Results: results, TotalCount: total}
	if len(rows) > 0 {
		last := rows[len(rows)-1]
		body.Links.Next = nextLink(c, p, len(rows), last.CreatedAt, last.DistinctID)
	}
	c.PureJSON(http.StatusOK, body)
}

// distinctIDOf reads the :distinct_id parameter. Errors: ENOTFOUND for ids no profile can have.
func distinctIDOf(c *gin.Context) (string, error) {
	id := c.Param("distinct_id")
	if id == "" || len(id) > maxDistinctID {
		return "", domain.Errorf(domain.ENOTFOUND, "user not found")
	}
	return id, nil
}

// getUser answers one profile in the SPEC §6.3 shape.
func (h *destHandlers) getUser(c *gin.Context) {
	id, err := distinctIDOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	row, err := h.s.DB.Profile(c.Request.Context(), tenantOf(c).ID, id)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", row.Body)
}

// eventOut is one subscriber event as the API shows it.
type eventOut struct {
	ID            int64           `json:"id"`
	DistinctID    string          `json:"distinct_id"`
	Name          string          `json:"name"`
	Type          string          `json:"type"`
	Properties    json.RawMessage `json:"properties"`
	Timestamp     time.Time       `json:"timestamp"`
	MessageID     string          `json:"message_id"`
	DestinationID string          `json:"destination_id"`
	ReceivedAt    time.Time       `json:"received_at"`
}

// listUserEvents answers a subscriber's events, newest first. A distinct id with neither a
// profile nor events is 404; events of an id only ever seen in tracks (no identify yet) are listed.
func (h *destHandlers) listUserEvents(c *gin.Context) {
	id, err := distinctIDOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	p, err := pageOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	afterID, err := afterRow(p)
	if err != nil {
		h.fail(c, err)
		return
	}
	ctx, tid := c.Request.Context(), tenantOf(c).ID
	events, total, err := h.s.DB.UserEvents(ctx, tid, id, p, afterID)
	if err != nil {
		h.fail(c, err)
		return
	}
	if total == 0 {
		if _, err := h.s.DB.Profile(ctx, tid, id); err != nil {
			h.fail(c, err)
			return
		}
	}
	results := make([]eventOut, len(events))
	for i, e := range events {
		results[i] = eventOut{
			ID: e.ID, DistinctID: e.DistinctID, Name: e.Name, Type: e.Type, Properties: e.Properties, Timestamp: e.Timestamp,
			MessageID: e.MessageID, DestinationID: e.DestinationID, ReceivedAt: e.CreatedAt,
		}
	}
	body := ListBody{Results: results, TotalCount: total}
	if len(events) > 0 {
		last := events[len(events)-1]
		body.Links.Next = nextLink(c, p, len(events), last.Timestamp, strconv.FormatInt(last.ID, 10))
	}
	c.PureJSON(http.StatusOK, body)
}

// messageOut is one stored inbound message with what became of it.
type messageOut struct {
	ID         int64           `json:"id"`
	MessageID  string          `json:"message_id"`
	Type       string          `json:"type"`
	DistinctID string          `json:"distinct_id,omitempty"`
	Status     string          `json:"status"`
	Reason     string          `json:"reason,omitempty"`
	Warnings   json.RawMessage `json:"warnings"`
	Erased     bool            `json:"erased,omitempty"`
	Timestamp  *time.Time      `json:"timestamp,omitempty"`
	ReceivedAt time.Time       `json:"received_at"`
	Message    json.RawMessage `json:"message,omitempty"`
}

// listMessages answers a destination's stored messages, newest first, filtered by ?status=
// (applied, duplicate, ignored), ?type= and ?distinct_id=.
func (h *destHandlers) listMessages(c *gin.Context) {
	d, err := h.destinationOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	p, err := pageOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	f := store.InboundFilter{DestinationID: d.ID, Status: c.Query("status"), DistinctID: c.Query("distinct_id"), Limit: p.Limit}
	switch f.Status {
	case "", store.InboundApplied, store.InboundDuplicate, store.InboundIgnored:
	default:
		h.fail(c, domain.Errorf(domain.EINVALID, "status: must be applied, duplicate or ignored"))
		return
	}
	if t := c.Query("type"); t != "" {
		if !isSegmentType(t) {
			h.fail(c, domain.Errorf(domain.EINVALID, "type: %q is not a Segment message type (identify, track, page, screen, group, alias, delete)", t))
			return
		}
		f.Types = []string{t}
	}
	if f.BeforeID, err = afterRow(p); err != nil {
		h.fail(c, err)
		return
	}
	rows, total, err := h.s.DB.InboundMessages(c.Request.Context(), f)
	if err != nil {
		h.fail(c, err)
		return
	}
	results := make([]messageOut, len(rows))
	for i, m := range rows {
		out := messageOut{
			ID: m.ID, MessageID: m.MessageID, Type: m.Type, DistinctID: m.DistinctID, Status: m.Status, Reason: m.Reason,
			Warnings: m.Warnings, Erased: m.Erased, ReceivedAt: m.ReceivedAt, Message: m.Body,
		}
		if out.Warnings == nil {
			out.Warnings = json.RawMessage("[]")
		}
		if !m.Timestamp.IsZero() {
			ts := m.Timestamp
			out.Timestamp = &ts
		}
		results[i] = out
	}
	body := ListBody{Results: results, TotalCount: total}
	if len(rows) > 0 {
		last := rows[len(rows)-1]
		body.Links.Next = nextLink(c, p, len(rows), last.ReceivedAt, strconv.FormatInt(last.ID, 10))
	}
	c.PureJSON(http.StatusOK, body)
}
