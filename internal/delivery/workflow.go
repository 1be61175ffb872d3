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
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// WorkflowPayload is a workflow delivery as stored in the outbox: the event and whose it is.
// The recipient is deliberately not stored: it is built from the subscriber's profile when the
// POST goes out, so a delivery that waited for its identify carries what that identify brought.
type WorkflowPayload struct {
	DistinctID string        `json:"distinct_id"`
	Event      WorkflowEvent `json:"event"`
}

// WorkflowEvent is the event part of a workflow POST.
type WorkflowEvent struct {
	Name       string          `json:"name"`
	Properties json.RawMessage `json:"properties"`
	Timestamp  time.Time       `json:"timestamp"`
	MessageID  string          `json:"message_id"`
}

// WorkflowRequest is the JSON body POSTed to a workflow's URL (SPEC §6.4).
type WorkflowRequest struct {
	Workflow   string          `json:"workflow"`    // the workflow's name
	WorkflowID string          `json:"workflow_id"` // its id, stable across renames
	Event      WorkflowEvent   `json:"event"`
	Recipient  json.RawMessage `json:"recipient"` // {distinct_id, channels…, preferences…, properties}
}

// Workflow POST headers.
const (
	HeaderSignature   = "X-Switchboard-Signature" // "sha256=" + hex HMAC-SHA256(secret, body)
	HeaderIdempotency = "Idempotency-Key"         // the Segment message id: the same for every retry
)

// RecipientFunc returns the recipient object of a subscriber as it is now; a subscriber without
// a profile still gets an object with its distinct_id and empty channels.
type RecipientFunc func(ctx context.Context, tenantID, distinctID string) (json.RawMessage, error)

// WorkflowSender POSTs workflow deliveries. Every answer but a 2xx is a failure the engine
// retries with backoff until the delivery expires (72 h):
//   - 429 and 5xx: the receiver is busy or down; its Retry-After is honoured.
//   - timeouts and connection errors: the same, without a Retry-After.
//   - other 4xx (400, 401, 404, …) and 3xx (redirects are not followed): these usually mean the
//     workflow's URL or secret is wrong. They are retried too, not dead-lettered at once, so that
//     fixing the workflow (PATCH url/secret, read at every attempt) lets the waiting deliveries
//     go out; each attempt's answer is kept in last_error.
type WorkflowSender struct {
	db        Workflows
	box       *auth.Box
	recipient RecipientFunc
	log       *slog.Logger

	// Client makes the POSTs; it must not follow redirects.
	Client *http.Client
	// Timeout bounds one POST, connection included.
	Timeout time.Duration
	// Concurrency is how many POSTs of one tenant's claim run at once.
	Concurrency int
}

// Workflows is what the workflow sender needs of a store: the workflow a delivery is for.
type Workflows interface {
	Workflow(ctx context.Context, tenantID, id string) (*store.Workflow, error)
}

// NewWorkflowSender returns a sender that reads workflows from db, opens their secrets with box,
// builds recipients with recipient and connects to workflow URLs through guard.
func NewWorkflowSender(db Workflows, box *auth.Box, recipient RecipientFunc, guard *outbound.Guard, log *slog.Logger) *WorkflowSender {
	return &WorkflowSender{
		db: db, box: box, recipient: recipient, log: log,
		Client:      WorkflowClient(guard),
		Timeout:     10 * time.Second,
		Concurrency: 4,
	}
}

// WorkflowClient is the client for workflow URLs: through the outbound guard (nil: private
// networks refused), redirects not followed, answers read through the guard's limit; each
// POST's own timeout bounds it.
func WorkflowClient(g *outbound.Guard) *http.Client {
	return g.Client(outbound.ClientConfig{Timeout: -1, MaxIdleConnsPerHost: 16})
}

// workflowTarget is a workflow with its secret opened, or why it cannot be sent to.
type workflowTarget struct {
	w      *store.Workflow
	secret string
	err    error
}

// Send implements Sender.
func (s *WorkflowSender) Send(ctx context.Context, tenantID string, ds []*store.Delivery) []Result {
	results := make([]Result, len(ds))
	targets := map[string]*workflowTarget{}
	for _, d := range ds {
		if _, ok := targets[d.OriginID]; !ok {
			targets[d.OriginID] = s.target(ctx, tenantID, d.OriginID)
		}
	}
	sem := make(chan struct{}, max(s.Concurrency, 1))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i].Err = errors.New("not sent: the send window ended")
				return
			}
			defer func() { <-sem }()
			results[i] = s.send(ctx, tenantID, targets[d.OriginID], d)
		}()
	}
	wg.Wait()
	return results
}

func (s *WorkflowSender) target(ctx context.Context, tenantID, id string) *workflowTarget {
	w, err := s.db.Workflow(ctx, tenantID, id)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return &workflowTarget{err: fmt.Errorf("workflow %s no longer exists", id)}
	} else if err != nil {
		return &workflowTarget{err: err}
	}
	secret, err := s.box.Open(w.SecretEnc)
	if err != nil {
		return &workflowTarget{err: err}
	}
	return &workflowTarget{w: w, secret: secret}
}

// send POSTs one delivery.
func (s *WorkflowSender) send(ctx context.Context, tenantID string, t *workflowTarget, d *store.Delivery) Result {
	if t.err != nil {
		return Result{Err: t.err}
	}
	var p WorkflowPayload
	if err := json.Unmarshal(d.Payload, &p); err != nil {
		return Result{Err: fmt.Errorf("stored payload is not a workflow event: %w", err)}
	}
	recipient, err := s.recipient(ctx, tenantID, p.DistinctID)
	if err != nil {
		return Result{Err: fmt.Errorf("building the recipient: %w", err)}
	}
	body, err := json.Marshal(WorkflowRequest{Workflow: t.w.Name, WorkflowID: t.w.ID, Event: p.Event, Recipient: recipient})
	if err != nil {
		return Result{Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.w.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Err: fmt.Errorf("workflow url: %w", unwrapURLError(err))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Switchboard-Workflow/1")
	req.Header.Set(HeaderSignature, "sha256="+auth.HMACSHA256Hex([]byte(t.secret), body))
	req.Header.Set(HeaderIdempotency, HeaderSafe(p.Event.MessageID))
	resp, err := s.Client.Do(req)
	if err != nil {
		// The tenant sees neither a port's state nor the detail of the failure (a workflow URL
		// could otherwise scan the network behind the server); the operator's log has it.
		s.log.Debug("workflow POST failed", "tenant_id", tenantID, "workflow_id", t.w.ID, "error", unwrapURLError(err).Error())
		return Result{Err: &AnswerError{Body: outbound.TenantMessage(&outbound.ConnectError{Host: req.URL.Host, Err: err})}}
	}
	defer resp.Body.Close()
	// Read the answer through a limit (for last_error, and so that the connection is reused).
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, answerLimit))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return Result{}
	}
	ae := newAnswerError(resp, answer)
	return Result{Err: ae, RetryAfter: ae.RetryAfter}
}

// HeaderSafe makes a message id usable as a header value: bytes outside printable ASCII (CR,
// LF, NUL, DEL, non-ASCII) and '%' are percent-encoded, so a hostile messageId neither breaks
// the request nor splits headers, and distinct ids stay distinct.
func HeaderSafe(v string) string {
	safe := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '%' {
			safe = false
			break
		}
	}
	if safe {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unwrapURLError drops *url.Error's "Post <url>:" prefix: the URL may carry a token in its
// query, and last_error is shown through the API.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
