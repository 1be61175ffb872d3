package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/segmentio/analytics-go/v3"
	"golang.org/x/time/rate"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/store"
)

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
// its message; anything else is classified from Segment's answer (SPEC §5.3, and the "one
// request per attempt" rule): 401/403 pause the tenant's lane until the key is replaced or a
// retry is asked for, 400/413 are split to find and dead-letter only the refused messages, and
// 429/5xx/timeouts are retried by the engine with backoff, honouring Retry-After.
type SegmentSender struct {
	db  SegmentKeys
	box *auth.Box
	log *slog.Logger

	// Transport is the HTTP transport under every client (tests and benchmarks may replace it).
	Transport http.RoundTripper
	// FlushInterval is how long a client may hold a partial batch.
	FlushInterval time.Duration
	// Cooldown is how long a client sends nothing after a failed request when the receiver gave
	// no Retry-After.
	Cooldown time.Duration
	// RequestTimeout bounds one request to Segment, answer included.
	RequestTimeout time.Duration
	// RejectedRecheck is how long deliveries of a tenant whose key Segment rejected wait before
	// the lane looks again (a new key or a retry request wakes it at once).
	RejectedRecheck time.Duration

	mu      sync.Mutex
	clients map[string]*segmentClient // by tenant id
}

// SegmentKeys is what the Segment sender needs of a store: a tenant's write key, and marking
// a key Segment rejected so that its lane pauses.
type SegmentKeys interface {
	SegmentKey(ctx context.Context, tenantID string) (*store.SegmentKey, error)
	RejectSegmentKey(ctx context.Context, tenantID string, version int64, reason string) error
}

// NewSegmentSender returns a sender reading write keys from db, unsealed with box, connecting to
// tenants' endpoints through guard.
func NewSegmentSender(db SegmentKeys, box *auth.Box, guard *outbound.Guard, log *slog.Logger) *SegmentSender {
	return &SegmentSender{
		db: db, box: box, log: log,
		Transport:       SegmentTransport(guard),
		FlushInterval:   100 * time.Millisecond,
		Cooldown:        time.Second,
		RequestTimeout:  10 * time.Second,
		RejectedRecheck: time.Hour,
		clients:         map[string]*segmentClient{},
	}
}

// SegmentTransport is the transport towards tenants' Segment endpoints: through the outbound
// guard (nil: private networks refused, nothing allowed), https unless the operator allowed
// the address, answers read through the guard's limit.
func SegmentTransport(g *outbound.Guard) http.RoundTripper {
	return g.RoundTripper(outbound.ClientConfig{RequireHTTPS: true, MaxIdleConnsPerHost: 8})
}

// segmentClient is one analytics-go client with the bookkeeping that ties its callbacks back to
// deliveries.
type segmentClient struct {
	tenantID string
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
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		for i := range results {
			results[i] = Result{Hold: domain.ReasonNoWriteKey, HoldFor: time.Minute}
		}
		return results
	case errors.Is(err, errKeyRejected):
		for i := range results {
			results[i] = Result{Hold: domain.ReasonKeyRejected, HoldFor: s.RejectedRecheck}
		}
		return results
	case err != nil:
		for i := range results {
			results[i].Err = err
		}
		return results
	}
	msgs := make([]*sendable, len(ds))
	all := make([]int, 0, len(ds))
	for i, d := range ds {
		if msgs[i], err = decodeSegmentMessage(d.Payload); err != nil {
			results[i] = Result{Err: err, Dead: true}
			continue
		}
		all = append(all, i)
	}
	s.sendGroup(ctx, c, msgs, all, results)
	return results
}

// sendGroup sends the messages at idx and records their results. Messages that Segment refused
// as a request (400/413) are sent again in halves, one half at a time so that analytics-go puts
// each in a request of its own, until the refused ones stand alone and are dead-lettered with
// Segment's answer.
func (s *SegmentSender) sendGroup(ctx context.Context, c *segmentClient, msgs []*sendable, idx []int, results []Result) {
	errs := s.sendOnce(ctx, c, msgs, idx)
	refused := map[*AnswerError][]int{} // by request
	var order []*AnswerError
	for k, i := range idx {
		results[i].Requests++
		r := s.classify(ctx, c, errs[k])
		var ae *AnswerError
		if r.Err != nil && errors.As(r.Err, &ae) && ae.refusesMessages() {
			if len(refused[ae]) == 0 {
				order = append(order, ae)
			}
			refused[ae] = append(refused[ae], i)
			continue
		}
		r.Requests = results[i].Requests
		results[i] = r
	}
	for _, ae := range order {
		group := refused[ae]
		if len(group) == 1 || ctx.Err() != nil {
			for _, i := range group {
				results[i].Err, results[i].Dead = ae, len(group) == 1
			}
			continue
		}
		half := len(group) / 2
		s.sendGroup(ctx, c, msgs, group[:half], results)
		s.sendGroup(ctx, c, msgs, group[half:], results)
	}
}

// sendOnce enqueues the messages at idx and waits for each one's callback.
func (s *SegmentSender) sendOnce(ctx context.Context, c *segmentClient, msgs []*sendable, idx []int) []error {
	errs := make([]error, len(idx))
	chans := make([]chan error, len(idx))
	for k, i := range idx {
		m := msgs[i]
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
			errs[k] = err
			continue
		}
		chans[k] = ch
	}
	for k, ch := range chans {
		if ch == nil {
			continue
		}
		select {
		case errs[k] = <-ch:
		case <-ctx.Done():
			errs[k] = errors.New("no answer from Segment in time")
			c.forget(msgs[idx[k]].MessageID)
		}
	}
	return errs
}

// classify turns the outcome of one message's request into the engine's Result.
func (s *SegmentSender) classify(ctx context.Context, c *segmentClient, err error) Result {
	if err == nil {
		return Result{}
	}
	if errors.Is(err, errCoolingDown) {
		// Not sent: the receiver asked to wait. The attempt is not counted.
		return Result{Hold: domain.ReasonRetryAfter, HoldFor: max(c.gate.wait(), 10*time.Millisecond)}
	}
	if errors.Is(err, errKeyRejected) {
		return Result{Hold: domain.ReasonKeyRejected, HoldFor: s.RejectedRecheck}
	}
	var ae *AnswerError
	if !errors.As(err, &ae) {
		return Result{Err: err, RetryAfter: c.gate.wait()}
	}
	switch {
	case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
		if c.gate.reject() {
			if err := s.db.RejectSegmentKey(context.WithoutCancel(ctx), c.tenantID, c.version, ae.Error()); err != nil {
				s.log.Error("segment: recording a rejected write key", "tenant_id", c.tenantID, "error", err.Error())
			}
			s.log.Warn("segment: write key rejected; the tenant's Segment lane is paused until the key is replaced or a retry is asked for",
				"tenant_id", c.tenantID, "answer", ae.Error())
		}
		return Result{Err: ae, Reason: domain.ReasonKeyRejected, RetryAfter: s.RejectedRecheck}
	default:
		return Result{Err: ae, RetryAfter: max(ae.RetryAfter, c.gate.wait())}
	}
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
			switch {
			case k.Status != store.SegmentActive:
				return nil, errKeyRejected
			case !c.gate.rejected():
				return c, nil
			}
			// Rejected before, active again: a retry was asked for; start afresh.
		}
		delete(s.clients, tenantID)
		go c.client.Close() // flushes what it holds with the old key, then stops
	}
	if k.Status == store.SegmentKeyRejected {
		return nil, errKeyRejected
	}
	key, err := s.box.Open(k.WriteKeyEnc)
	if err != nil {
		return nil, err
	}
	c := &segmentClient{tenantID: tenantID, version: k.Version, endpoint: k.Endpoint, waiting: map[string]chan error{}}
	c.gate = newGate(s.Transport, rate.Limit(k.MaxRPS), s.Cooldown, s.RequestTimeout)
	c.client, err = analytics.NewWithConfig(key, analytics.Config{
		Endpoint:  k.Endpoint,
		Interval:  s.FlushInterval,
		BatchSize: 2500, // let the 500,000-byte limit decide how full a request gets
		Transport: c.gate,
		Callback:  c,
		Logger:    analyticsLogger{log: s.log, tenantID: tenantID},
		// Switchboard retries failed deliveries itself, from the database, one request per
		// attempt; the gate answers analytics-go's own retries of a request with the answer
		// the first one got, without touching the network.
		RetryAfter: func(int) time.Duration { return time.Millisecond },
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

// gate is the transport under one tenant's client. It keeps the tenant under its requests/s
// limit; it makes exactly one HTTP request per batch analytics-go builds (analytics-go retries a
// failed batch ten times in a loop of its own: the gate answers those retries with the first
// request's outcome); it reads every answer through a small limit and turns anything but a 2xx
// into an *AnswerError, so that analytics-go neither follows redirects nor reads large bodies;
// after a 429/5xx or a failed connection it refuses new batches at once until the receiver's
// Retry-After, or a short cooldown, has passed; and once Segment rejected the write key it sends
// nothing more.
type gate struct {
	base     http.RoundTripper
	limiter  *rate.Limiter
	cooldown time.Duration
	timeout  time.Duration

	mu         sync.Mutex
	notBefore  time.Time
	keyRefused bool
	answered   map[string]answered // batch id → the outcome of its one request
}

func newGate(base http.RoundTripper, rps rate.Limit, cooldown, timeout time.Duration) *gate {
	return &gate{base: base, limiter: rate.NewLimiter(rps, 1), cooldown: cooldown, timeout: timeout, answered: map[string]answered{}}
}

type answered struct {
	err error
	at  time.Time
}

var (
	// errCoolingDown is returned for batches the gate did not send because the receiver asked
	// to wait.
	errCoolingDown = errors.New("segment: receiver asked to wait; not sent")
	// errKeyRejected is returned for batches not sent because Segment rejected the write key.
	errKeyRejected = errors.New("segment: write key rejected; not sent")
)

// answerLimit is how much of an answer is read; AnswerError keeps less.
const answerLimit = 64 << 10

// AnswerError is a receiver's answer other than 2xx, or a connection that failed: the status
// and at most 200 bytes of the body, as last_error shows them.
type AnswerError struct {
	Status     int // 0 when no answer came
	Body       string
	RetryAfter time.Duration
}

func (e *AnswerError) Error() string {
	if e.Status == 0 {
		return e.Body
	}
	if e.Body == "" {
		return strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
	}
	return strconv.Itoa(e.Status) + " " + e.Body
}

// refusesMessages reports whether the answer refused the request for what it carried (400, 413),
// so that splitting it finds the messages to blame.
func (e *AnswerError) refusesMessages() bool {
	return e.Status == http.StatusBadRequest || e.Status == http.StatusRequestEntityTooLarge
}

// newAnswerError reads what is needed of a non-2xx answer.
func newAnswerError(resp *http.Response, body []byte) *AnswerError {
	e := &AnswerError{Status: resp.StatusCode, Body: snippet(body, 200), RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Body = "redirect not followed"
		if loc := resp.Header.Get("Location"); loc != "" {
			e.Body = "redirect to " + snippet([]byte(loc), 150) + " not followed"
		}
	}
	return e
}

// snippet is at most n bytes of b as valid, single-line UTF-8.
func snippet(b []byte, n int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b[:min(len(b), n+utf8.UTFMax)]), "")), " ")
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	id := batchID(body)
	g.mu.Lock()
	if a, ok := g.answered[id]; ok && id != "" {
		g.mu.Unlock()
		return nil, a.err
	}
	g.mu.Unlock()
	err := g.send(req, body)
	if id != "" && err != nil {
		g.mu.Lock()
		now := time.Now()
		for k, a := range g.answered {
			if now.Sub(a.at) > time.Minute {
				delete(g.answered, k)
			}
		}
		g.answered[id] = answered{err: err, at: now}
		g.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	return &http.Response{Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

// send makes the one request of a batch; nil means Segment accepted it.
func (g *gate) send(req *http.Request, body []byte) error {
	if g.rejected() {
		return errKeyRejected
	}
	if g.wait() > 0 {
		return errCoolingDown
	}
	if err := g.limiter.Wait(req.Context()); err != nil {
		return errCoolingDown // the request budget ran out before this batch's turn: not sent
	}
	ctx, cancel := context.WithTimeout(req.Context(), g.timeout)
	defer cancel()
	out := req.Clone(ctx)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	resp, err := g.base.RoundTrip(out)
	if err != nil {
		// The tenant's view says neither why nor how (closed port, timeout, refused address):
		// the endpoint is theirs to choose, the network behind the server is not theirs to map.
		g.pause(g.cooldown)
		return &AnswerError{Body: outbound.TenantMessage(&outbound.ConnectError{Host: req.URL.Host, Err: err})}
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, answerLimit))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	ae := newAnswerError(resp, answer)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		g.pause(max(ae.RetryAfter, g.cooldown))
	}
	return ae
}

// batchID is the messageId analytics-go gives each batch it builds, the same in every retry of
// it: the first field of the JSON body.
func batchID(body []byte) string {
	const prefix = `{"messageId":"`
	if !bytes.HasPrefix(body, []byte(prefix)) {
		return ""
	}
	rest := body[len(prefix):]
	if end := bytes.IndexByte(rest[:min(len(rest), 128)], '"'); end > 0 {
		return string(rest[:end])
	}
	return ""
}

// reject marks the write key as refused; it reports whether this was the first refusal.
func (g *gate) reject() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	first := !g.keyRefused
	g.keyRefused = true
	return first
}

func (g *gate) rejected() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.keyRefused
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

// analyticsLogger sends analytics-go's log lines to slog at debug level, tagged with the tenant.
// What it reports — failed requests, and "messages dropped" after its own retries — is not what
// happens to the messages: Switchboard retries them from the database, and the engine logs a
// lane that starts failing and recovers. Anything else it reports (a panic) is a warning.
// analytics-go never logs the write key.
type analyticsLogger struct {
	log      *slog.Logger
	tenantID string
}

func (l analyticsLogger) Logf(format string, args ...any) {
	l.log.Debug("segment client", "tenant_id", l.tenantID, "detail", fmt.Sprintf(format, args...))
}

func (l analyticsLogger) Errorf(format string, args ...any) {
	if strings.Contains(format, "dropped") {
		// "N messages dropped because they failed to be sent…": analytics-go gives up on its
		// batch, Switchboard does not (the deliveries wait in the database for their next
		// attempt); saying "dropped" would be untrue.
		return
	}
	detail := fmt.Sprintf(format, args...)
	level := slog.LevelDebug
	if strings.HasPrefix(format, "panic") || strings.HasPrefix(format, "marshalling") {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "segment client", "tenant_id", l.tenantID, "detail", detail)
}
