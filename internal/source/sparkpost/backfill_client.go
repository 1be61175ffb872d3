// Package backfill pulls events SparkPost still holds (its Events API keeps 10 days) into a
// source, as if its webhook had delivered them: each page is turned into webhook-shaped batches
// and stored through the same inbox path, so dedupe by event_id and forwarding to Segment behave
// exactly as for webhooks. A job runs in the background of the process that started it; the
// SparkPost API key lives only in that job's memory.
package sparkpost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/outbound"
)

// SparkPost API base URLs.
const (
	DefaultBaseURL = "https://api.sparkpost.com"
	EUBaseURL      = "https://api.eu.sparkpost.com"
)

// EventsAPIRetention is how far back SparkPost's Events API reaches.
const EventsAPIRetention = 10 * 24 * time.Hour

// maxPageBytes caps one page's body as a webhook body is capped (server.HookBodyLimit, 16 MiB):
// a page is held in memory and stored as inbox batches, and back-fill must not bring in what the
// hook would refuse. A larger page is a failed attempt, and the next asks for a quarter of the
// events (pageShrink) until pages fit.
const maxPageBytes = 16 << 20

// pageShrink divides per_page after a page too large: 10,000 comes down to 1 in seven attempts.
const pageShrink = 4

// sparkpostPerPage is the Events API's page size when a URL names none.
const sparkpostPerPage = 1000

// page is one answer of GET /api/v1/events/message.
type page struct {
	Results    []json.RawMessage `json:"results"`
	TotalCount int               `json:"total_count"`
	Links      json.RawMessage   `json:"links"`
}

// next returns links.next: an object {"next": url} in the Events API, a list of {href, rel}
// in older documents; both are accepted.
func (p *page) next() string {
	var obj struct {
		Next string `json:"next"`
	}
	if json.Unmarshal(p.Links, &obj) == nil {
		return obj.Next
	}
	var list []struct{ Href, Rel string }
	if json.Unmarshal(p.Links, &list) == nil {
		for _, l := range list {
			if l.Rel == "next" {
				return l.Href
			}
		}
	}
	return ""
}

// client calls SparkPost's Events API with one API key, backing off on 429 and 5xx.
type client struct {
	http        *http.Client
	base        *url.URL
	key         string
	maxAttempts int
	backoff     func(attempt int, retryAfter time.Duration) time.Duration
	// failed is told about each failed attempt at a page, before the wait when another attempt
	// follows (retrying), for the job's progress; its error ends the job.
	failed func(err error, retrying bool) error
	// perPage, once a page was too large, caps per_page of every later request (0: no cap).
	perPage int
}

// firstPage is the search URL of the window [from, to): SparkPost takes minutes
// (YYYY-MM-DDTHH:MM), so the window is widened to whole minutes; the few extra events are
// stored like the others and nothing is stored twice.
func (c *client) firstPage(from, to time.Time, perPage int) *url.URL {
	from = from.UTC().Truncate(time.Minute)
	if t := to.UTC().Truncate(time.Minute); t.Before(to) {
		to = t.Add(time.Minute)
	}
	q := url.Values{}
	q.Set("from", from.Format("2006-01-02T15:04"))
	q.Set("to", to.UTC().Format("2006-01-02T15:04"))
	q.Set("timezone", "UTC")
	q.Set("per_page", strconv.Itoa(perPage))
	return c.base.ResolveReference(&url.URL{Path: "/api/v1/events/message", RawQuery: q.Encode()})
}

// resolve turns links.next into the URL to fetch. It must stay on SparkPost's host: the API
// key goes with every request.
func (c *client) resolve(next string) (*url.URL, error) {
	u, err := c.base.Parse(next)
	if err != nil {
		return nil, fmt.Errorf("links.next %q is not a URL", next)
	}
	if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
		return nil, fmt.Errorf("links.next points to %s://%s, not %s; not sending the API key there", u.Scheme, u.Host, c.base.Host)
	}
	return u, nil
}

// errStatus is a final (not retried) answer of SparkPost.
type errStatus struct {
	status  int
	message string
}

func (e *errStatus) Error() string {
	msg := fmt.Sprintf("SparkPost answered %d %s", e.status, http.StatusText(e.status))
	switch e.status {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += " (the API key needs the Events Search: Read-only permission)"
	}
	if e.message != "" {
		msg += ": " + e.message
	}
	return msg
}

// get fetches one page, retrying 429, 5xx and transport errors with backoff (Retry-After when
// SparkPost sends one) up to maxAttempts in a row.
func (c *client) get(ctx context.Context, u *url.URL) (*page, error) {
	for attempt := 1; ; attempt++ {
		u = c.capPerPage(u)
		p, retryAfter, err := c.once(ctx, u)
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var final *errStatus
		var big *errPageTooLarge
		tooLarge := errors.As(err, &big)
		retrying := attempt < c.maxAttempts && (tooLarge && big.perPage > 1 || !tooLarge && !errors.As(err, &final))
		if c.failed != nil {
			if ferr := c.failed(err, retrying); ferr != nil {
				return nil, ferr
			}
		}
		if final != nil || tooLarge && big.perPage <= 1 {
			return nil, err
		}
		if !retrying {
			return nil, fmt.Errorf("gave up after %d attempts: %s", attempt, err.Error())
		}
		if tooLarge {
			// Not SparkPost's overload: the smaller page is asked for at once, and every later
			// page keeps the smaller size.
			c.perPage = max(big.perPage/pageShrink, 1)
			continue
		}
		t := time.NewTimer(c.backoff(attempt, retryAfter))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// errPageTooLarge is a page past maxPageBytes, asked for with perPage events.
type errPageTooLarge struct{ perPage int }

func (e *errPageTooLarge) Error() string {
	if e.perPage <= 1 {
		return fmt.Sprintf("SparkPost sent one event larger than %d MiB, the most a webhook batch may hold; it cannot be stored", maxPageBytes>>20)
	}
	return fmt.Sprintf("SparkPost's page of per_page=%d is larger than %d MiB, the most a webhook batch may hold; asking for %d events a page",
		e.perPage, maxPageBytes>>20, max(e.perPage/pageShrink, 1))
}

// requestedPerPage is the per_page u asks for.
func requestedPerPage(u *url.URL) int {
	if n, err := strconv.Atoi(u.Query().Get("per_page")); err == nil && n > 0 {
		return n
	}
	return sparkpostPerPage
}

// capPerPage returns u asking for at most c.perPage events (links.next repeats the per_page of
// the request it answers, which may be from before the cap).
func (c *client) capPerPage(u *url.URL) *url.URL {
	if c.perPage <= 0 || requestedPerPage(u) <= c.perPage {
		return u
	}
	q := u.Query()
	q.Set("per_page", strconv.Itoa(c.perPage))
	capped := *u
	capped.RawQuery = q.Encode()
	return &capped
}

// errRetry is an answer worth trying again.
type errRetry struct{ msg string }

func (e *errRetry) Error() string { return e.msg }

func (c *client) once(ctx context.Context, u *url.URL) (*page, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, &errStatus{message: err.Error()}
	}
	req.Header.Set("Authorization", c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "switchboard-backfill")
	resp, err := c.http.Do(req)
	if err != nil {
		// The tenant chose base_url: the message says "could not connect to HOST" whatever the
		// reason (closed port, timeout, refused address), so that back-fills cannot map the
		// network behind the server. It never holds the key (a header).
		return nil, 0, &errRetry{msg: outbound.TenantMessage(err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, retryAfter(resp.Header.Get("Retry-After")), &errRetry{msg: fmt.Sprintf("SparkPost answered %d", resp.StatusCode)}
	default:
		return nil, 0, &errStatus{status: resp.StatusCode, message: sparkpostError(resp.Body)}
	}
	if resp.ContentLength > maxPageBytes {
		return nil, 0, &errPageTooLarge{perPage: requestedPerPage(u)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes+1))
	if len(body) > maxPageBytes || errors.Is(err, outbound.ErrBodyTooLarge) {
		return nil, 0, &errPageTooLarge{perPage: requestedPerPage(u)}
	}
	if err != nil {
		return nil, 0, &errRetry{msg: "reading the page: " + err.Error()}
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, 0, &errStatus{status: resp.StatusCode, message: "the page is not the Events API's JSON: " + err.Error()}
	}
	return &p, 0, nil
}

// sparkpostError reads SparkPost's {"errors": [{"message", "description"}]}; anything else is
// left out, so that a misdirected base_url cannot make Switchboard repeat a stranger's page.
func sparkpostError(r io.Reader) string {
	var body struct {
		Errors []struct{ Message, Description string } `json:"errors"`
	}
	b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	if json.Unmarshal(b, &body) != nil || len(body.Errors) == 0 {
		return ""
	}
	msg := strings.TrimSpace(body.Errors[0].Message + ": " + body.Errors[0].Description)
	msg = strings.TrimSuffix(msg, ":")
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return strings.ToValidUTF8(msg, "")
}

// retryAfter reads Retry-After as seconds or an HTTP date; 0 when absent or unreadable.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// BackfillBackoff waits Retry-After when SparkPost sent one (at most 5 minutes), otherwise
// 1 s, 2 s, 4 s … up to a minute, with jitter so that jobs do not retry in step.
func BackfillBackoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, 5*time.Minute)
	}
	d := min(time.Second<<min(attempt-1, 6), time.Minute)
	return d/2 + rand.N(d/2+1)
}
