package server

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// List limits of SPEC §4.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// ListBody is the shape of every list response.
type ListBody struct {
	Results    any   `json:"results"`
	TotalCount int   `json:"total_count"`
	Links      Links `json:"links"`
}

// Links holds the URL of the next page, absent on the last one.
type Links struct {
	Next string `json:"next,omitempty"`
}

// cursor is the decoded form of the opaque cursor: the sort key of the last row returned.
type cursor struct {
	T  int64  `json:"t"`
	ID string `json:"id"`
}

// pageOf reads ?limit= and ?cursor= into a store.Page.
func pageOf(c *gin.Context) (store.Page, error) {
	p := store.Page{Limit: defaultLimit}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return p, domain.Errorf(domain.EINVALID, "limit: must be a whole number from 1 to %d", maxLimit)
		}
		p.Limit = n
	}
	if v := c.Query("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		var cur cursor
		if err != nil || json.Unmarshal(raw, &cur) != nil || cur.ID == "" {
			return p, domain.Errorf(domain.EINVALID, "cursor: not a cursor this server issued; use links.next as given")
		}
		p.AfterTime, p.AfterID = time.UnixMilli(cur.T), cur.ID
	}
	return p, nil
}

// nextLink returns the URL of the page after the row (t, id), keeping the request's other query
// parameters, or "" when the page was not full.
func nextLink(c *gin.Context, p store.Page, n int, t time.Time, id string) string {
	if n < p.Limit {
		return ""
	}
	b, _ := json.Marshal(cursor{T: t.UnixMilli(), ID: id})
	q := c.Request.URL.Query()
	q.Set("cursor", base64.RawURLEncoding.EncodeToString(b))
	q.Set("limit", strconv.Itoa(p.Limit))
	return (&url.URL{Path: c.Request.URL.Path, RawQuery: q.Encode()}).String()
}
