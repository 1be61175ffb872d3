package server

import (
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

// pageOf reads ?limit= and ?cursor= into a store.Page.
func pageOf(c *gin.Context) (store.Page, error) {
	p := store.Page{}
	var err error
	if p.Limit, err = domain.ParseLimit("limit", c.Query("limit"), defaultLimit, maxLimit); err != nil {
		return p, err
	}
	if v := c.Query("cursor"); v != "" {
		cur, err := domain.ParseCursor(v)
		if err != nil {
			return p, err
		}
		p.AfterTime, p.AfterID = cur.Time, cur.ID
	}
	return p, nil
}

// afterRow returns the row number a page of a list keyed by row number continues after (0 for
// the first page). Errors: EINVALID.
func afterRow(p store.Page) (int64, error) {
	if p.AfterID == "" {
		return 0, nil
	}
	return domain.Cursor{ID: p.AfterID}.IntID()
}

// nextLink returns the URL of the page after the row (t, id), keeping the request's other query
// parameters, or "" when the page was not full.
func nextLink(c *gin.Context, p store.Page, n int, t time.Time, id string) string {
	if n < p.Limit {
		return ""
	}
	q := c.Request.URL.Query()
	q.Set("cursor", domain.Cursor{Time: t, ID: id}.String())
	q.Set("limit", strconv.Itoa(p.Limit))
	return (&url.URL{Path: c.Request.URL.Path, RawQuery: q.Encode()}).String()
}
