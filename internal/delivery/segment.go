package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/analytics-go/v3"
	"golang.org/x/time/rate"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// TargetSegment is the deliveries.target of Segment track calls.
const TargetSegment = "segment"

// ReasonNoWriteKey marks Segment deliveries waiting for their tenant to register a write key.
const ReasonNoWriteKey = "no_write_key"

// SegmentMessage is a Segment call as stored in a delivery's payload: Segment's own JSON shape,
// so that the outbox holds exactly what will be sent.
type SegmentMessage struct {
	Type        string         `json:"type"`
	MessageID   string         `json:"messageId"`
	UserID      string         `json:"userId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	Event       string         `json:"event"`
	Timestamp   time.Time      `json:"timestamp"`
	Properties  map[string]any `json:"properties,omitempty"`
	Context     map[string]any `json:"context,omitempty"`
}

// SegmentSender sends track calls with one long-lived analytics-go client per tenant write key
// and endpoint. A delivery counts as delivered only when the client calls Callback.Success for
// its message; anything else is a failure the engine retries.
type SegmentSender struct {
	db  *store.DB
	box *auth.Box
	log *slog.Logger

	// Transport is the HTTP transport under every client (tests and benchmarks may replace it).
	Transport http.RoundTripper
	// FlushInterval is how long a client may hold a partial batch.
	FlushInterval time.Duration
	// Cooldown is how long a client sends nothing after a failed request when the receiver gave
	// no Retry-After.
	Cooldown time.Duration

	mu      sync.Mutex
	clients map[string]*segmentClient // by tenant id
}

// NewSegmentSender returns a sender reading write keys from db, unsealed with box.
func NewSegmentSender(db *store.DB, box *auth.Box, log *slog.Logger) *SegmentSender {
	return &SegmentSender{
		db: db, box: box, log: log,
		Transport:     http.DefaultTransport,
		FlushInterval: 100 * time.Millisecond,
		Cooldown:      time.Second,
		clients:       map[string]*segmentClient{},
	}
}

// segmentClient is one analytics-go client with the bookkeeping that ties its callbacks back to
// deliveries.
type segmentClient struct {
	version  int64
	endpoint string
	client   analytics.Client
	gate     *gate

	mu      sync.Mutex
	waiting map[string]chan error // messageId → outcome
}

func (c *segmentClient) Success(m analytics.Message) { c.resolve(m, nil) }

func (c *segmentClient) Failure(m analytics.Message, err error) {
	if err == nil {
		err = errors.New("segment: failed")
	}
	c.resolve(m, err)
}

func (c *segmentClient) resolve(m analytics.Message, err error) {
	var id string
	switch t := m.(type) {
	case analytics.Track:
		id = t.MessageId
	case *analytics.Track:
		id = t.MessageId
	}
	c.mu.Lock()
	ch, ok := c.waiting[id]
	delete(c.waiting, id)
	c.mu.Unlock()
	if ok {
		ch <- err
	}
}

// Send implements Sender.
func (s *SegmentSender) Send(ctx context.Context, tenantID string, ds []*store.Delivery) []Result {
	results := make([]Result, len(ds))
	c, err := s.client(ctx, tenantID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		for i := range results {
			results[i] = Result{Hold: ReasonNoWriteKey, HoldFor: time.Minute}
		}
		return results
	} else if err != nil {
		for i := range results {
			results[i].Err = err
		}
		return results
	}
	chans := make([]chan error, len(ds))
	for i, d := range ds {
		m, err := decodeSegmentMessage(d.Payload)
		if err != nil {
			results[i].Err = err
			continue
		}
		ch := make(chan error, 1)
		c.mu.Lock()
		c.waiting[m.MessageID] = ch
		c.mu.Unlock()
		track := analytics.Track{
			MessageId: m.MessageID, UserId: m.UserID, AnonymousId: m.AnonymousID, Event: m.Event,
			Timestamp: m.Timestamp, Properties: m.Properties, Context: &analytics.Context{Extra: m.Context},
		}
		if err := c.client.Enqueue(track); err != nil {
			c.forget(m.MessageID)
			results[i].Err = err
			continue
		}
		chans[i] = ch
	}
	for i, ch := range chans {
		if ch == nil {
			continue
		}
		select {
		case err := <-ch:
			results[i].Err = err
		case <-ctx.Done():
			results[i].Err = errors.New("no answer from Segment in time")
			c.forget(ds[i].MessageID)
		}
		if results[i].Err != nil {
			results[i].RetryAfter = c.gate.wait()
		}
	}
	return results
}

// storedMessage is SegmentMessage as read back for sending: properties and context stay raw JSON
// a level down, so that sending costs no deep decode and every value goes out byte for byte as
// it was stored (numbers keep their exact text).
type storedMessage struct {
	MessageID   string                     `json:"messageId"`
	UserID      string                     `json:"userId"`
	AnonymousID string                     `json:"anonymousId"`
	Event       string                     `json:"event"`
	Timestamp   time.Time                  `json:"timestamp"`
	Properties  map[string]json.RawMessage `json:"properties"`
	Context     map[string]json.RawMessage `json:"context"`
}

// sendable is a stored message in analytics-go's types.
type sendable struct {
	MessageID, UserID, AnonymousID, Event string
	Timestamp                             time.Time
	Properties                            analytics.Properties
	Context                               map[string]any
}

func decodeSegmentMessage(payload []byte) (*sendable, error) {
	var m storedMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("stored payload is not a Segment message: %w", err)
	}
	out := &sendable{MessageID: m.MessageID, UserID: m.UserID, AnonymousID: m.AnonymousID, Event: m.Event, Timestamp: m.Timestamp,
		Properties: make(analytics.Properties, len(m.Properties)), Context: make(map[string]any, len(m.Context))}
	for k, v := range m.Properties {
		out.Properties[k] = v
	}
	for k, v := range m.Context {
		out.Context[k] = v
	}
	return out, nil
}

func (c *segmentClient) forget(id string) {
	c.mu.Lock()
	delete(c.waiting, id)
	c.mu.Unlock()
}

// client returns the tenant's client for its current write key, replacing (and closing) the
// client of an earlier key.
func (s *SegmentSender) client(ctx context.Context, tenantID string) (*segmentClient, error) {
	k, err := s.db.SegmentKey(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[tenantID]; ok {
		if c.version == k.Version {
			return c, nil
		}
		delete(s.clients, tenantID)
		go c.client.Close() // flushes what it holds with the old key, then stops
	}
	key, err := s.box.Open(k.WriteKeyEnc)
	if err != nil {
		return nil, err
	}
	c := &segmentClient{version: k.Version, endpoint: k.Endpoint, waiting: map[string]chan error{}}
	c.gate = &gate{base: s.Transport, limiter: rate.NewLimiter(rate.Limit(k.MaxRPS), 1), cooldown: s.Cooldown}
	c.client, err = analytics.NewWithConfig(key, analytics.Config{
		Endpoint:  k.Endpoint,
		Interval:  s.FlushInterval,
		BatchSize: 2500, // let the 500,000-byte limit decide how full a request gets
		Transport: c.gate,
		Callback:  c,
		Logger:    analyticsLogger{log: s.log, tenantID: tenantID},
		// Switchboard retries failed deliveries itself, from the database; the gate answers
		// analytics-go's own quick retries at once while the receiver cools down.
		RetryAfter: func(int) time.Duration { return 20 * time.Millisecond },
	})
	if err != nil {
		return nil, err
	}
	s.clients[tenantID] = c
	return c, nil
}

// Close flushes and closes every client, giving up when ctx ends (a client waiting on a hung
// endpoint must not hold up shutdown; its rows were already handed back by the engine).
func (s *SegmentSender) Close(ctx context.Context) {
	s.mu.Lock()
	clients := s.clients
	s.clients = map[string]*segmentClient{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); c.client.Close() }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// gate is the transport under one tenant's client: it keeps the tenant under its requests/s
// limit and, after a failed request, refuses at once (without touching the network) until the
// receiver's Retry-After — or a short cooldown — has passed.
type gate struct {
	base     http.RoundTripper
	limiter  *rate.Limiter
	cooldown time.Duration

	mu        sync.Mutex
	notBefore time.Time
}

// errCoolingDown is returned for requests refused by the gate.
var errCoolingDown = errors.New("segment: receiver asked to wait; not sent")

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	if g.wait() > 0 {
		return nil, errCoolingDown
	}
	if err := g.limiter.Wait(req.Context()); err != nil {
		return nil, err
	}
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		g.pause(g.cooldown)
		return nil, err
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		g.pause(max(retryAfter(resp.Header.Get("Retry-After")), g.cooldown))
	}
	return resp, nil
}

func (g *gate) pause(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := time.Now().Add(d); t.After(g.notBefore) {
		g.notBefore = t
	}
}

// wait is how long the gate still refuses requests.
func (g *gate) wait() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return max(time.Until(g.notBefore), 0)
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// analyticsLogger sends analytics-go's log lines to slog at debug/warn level, tagged with the
// tenant. analytics-go never logs the write key.
type analyticsLogger struct {
	log      *slog.Logger
	tenantID string
}

func (l analyticsLogger) Logf(format string, args ...any) {
	l.log.Debug("segment client", "tenant_id", l.tenantID, "detail", fmt.Sprintf(format, args...))
}

func (l analyticsLogger) Errorf(format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if strings.Contains(detail, errCoolingDown.Error()) {
		// analytics-go's own quick retries, refused by the gate on purpose: not news.
		l.log.Debug("segment client", "tenant_id", l.tenantID, "detail", detail)
		return
	}
	l.log.Warn("segment client", "tenant_id", l.tenantID, "detail", detail)
}
