package server

import (
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// workflowOut is a workflow as the API shows it: the secret only when Switchboard generated it.
type workflowOut struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Event      string    `json:"event"`
	URL        string    `json:"url"`
	Secret     string    `json:"secret,omitempty"`
	SecretHint string    `json:"secret_hint"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

func workflowBody(w *store.Workflow) *workflowOut {
	return &workflowOut{ID: w.ID, Name: w.Name, Event: w.Event, URL: w.URL, SecretHint: w.SecretHint, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
}

// workflowIn is the body of POST and PATCH …/workflows.
type workflowIn struct {
	Name   *string `json:"name"`
	Event  *string `json:"event"`
	URL    *string `json:"url"`
	Secret *string `json:"secret"`
}

// checkEvent validates a workflow's event name. It is matched byte for byte against the
// (prefixed) event names, so it is not trimmed.
func checkEvent(v *string) (string, error) {
	switch {
	case v == nil:
		return "", domain.Errorf(domain.EINVALID, "event: is required")
	case strings.TrimSpace(*v) == "":
		return "", domain.Errorf(domain.EINVALID, "event: must not be empty")
	case utf8.RuneCountInString(*v) > 1000:
		return "", domain.Errorf(domain.EINVALID, "event: must be at most 1000 characters")
	case strings.ContainsFunc(*v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", domain.Errorf(domain.EINVALID, "event: must not contain control characters")
	}
	return *v, nil
}

// checkWorkflowURL accepts an absolute http(s) URL without credentials (the secret is how a
// receiver authenticates Switchboard, and a URL is shown in every read) whose host is no
// literal address the outbound guard refuses (names are checked again at every dial).
func checkWorkflowURL(v *string, guard *outbound.Guard) (string, error) {
	if v == nil {
		return "", domain.Errorf(domain.EINVALID, "url: is required")
	}
	s := strings.TrimSpace(*v)
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "", domain.Errorf(domain.EINVALID, "url: must be an absolute http or https URL such as https://example.com/hooks/switchboard")
	case u.User != nil:
		return "", domain.Errorf(domain.EINVALID, "url: must not contain a user name or password; the receiver checks X-Switchboard-Signature instead")
	case u.Fragment != "" || len(s) > 2000:
		return "", domain.Errorf(domain.EINVALID, "url: must have no #fragment and be at most 2000 characters")
	}
	if err := guard.CheckURL("url", s); err != nil {
		return "", err
	}
	return s, nil
}

// checkSecret validates a secret the tenant chose.
func checkSecret(v string) error {
	if len(v) < 16 || len(v) > 256 || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return domain.Errorf(domain.EINVALID, "secret: must be 16 to 256 printable ASCII characters without spaces (leave it out to have one generated)")
	}
	return nil
}

func (h *destHandlers) createWorkflow(c *gin.Context) {
	var in workflowIn
	if !h.s.decode(c, &in) {
		return
	}
	w := &store.Workflow{ID: domain.NewID(workflowPrefix), TenantID: tenantOf(c).ID}
	var err error
	if w.Name, err = domain.CheckName("name", in.Name); err != nil {
		h.fail(c, err)
		return
	}
	if w.Event, err = checkEvent(in.Event); err != nil {
		h.fail(c, err)
		return
	}
	if w.URL, err = checkWorkflowURL(in.URL, h.s.Outbound); err != nil {
		h.fail(c, err)
		return
	}
	secret, generated := "", in.Secret == nil
	if generated {
		secret = domain.NewSecret("sbw_")
	} else if err := checkSecret(*in.Secret); err != nil {
		h.fail(c, err)
		return
	} else {
		secret = *in.Secret
	}
	w.SecretEnc, w.SecretHint = h.s.Box.Seal(secret), domain.Hint(secret)
	if err := h.s.DB.CreateWorkflow(c.Request.Context(), w); err != nil {
		h.fail(c, err)
		return
	}
	out := workflowBody(w)
	if generated {
		out.Secret = secret
	}
	c.PureJSON(http.StatusCreated, out)
}

func (h *destHandlers) listWorkflows(c *gin.Context) {
	p, err := pageOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	ws, total, err := h.s.DB.Workflows(c.Request.Context(), tenantOf(c).ID, p)
	if err != nil {
		h.fail(c, err)
		return
	}
	results := make([]*workflowOut, len(ws))
	for i, w := range ws {
		results[i] = workflowBody(w)
	}
	body := ListBody{Results: results, TotalCount: total}
	if len(ws) > 0 {
		last := ws[len(ws)-1]
		body.Links.Next = nextLink(c, p, len(ws), last.CreatedAt, last.ID)
	}
	c.PureJSON(http.StatusOK, body)
}

// workflowOf loads the :wid workflow of the request's tenant. Errors: ENOTFOUND.
func (h *destHandlers) workflowOf(c *gin.Context) (*store.Workflow, error) {
	wid := c.Param("wid")
	if !domain.ValidID(workflowPrefix, wid) {
		return nil, domain.Errorf(domain.ENOTFOUND, "workflow not found")
	}
	return h.s.DB.Workflow(c.Request.Context(), tenantOf(c).ID, wid)
}

func (h *destHandlers) getWorkflow(c *gin.Context) {
	w, err := h.workflowOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, workflowBody(w))
}

// updateWorkflow changes the fields given. A new url or secret applies to every delivery not yet
// delivered, retries of failed ones included: both are read at each attempt.
func (h *destHandlers) updateWorkflow(c *gin.Context) {
	w, err := h.workflowOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	var in workflowIn
	if !h.s.decode(c, &in) {
		return
	}
	if in.Name != nil {
		if w.Name, err = domain.CheckName("name", in.Name); err != nil {
			h.fail(c, err)
			return
		}
	}
	if in.Event != nil {
		if w.Event, err = checkEvent(in.Event); err != nil {
			h.fail(c, err)
			return
		}
	}
	if in.URL != nil {
		if w.URL, err = checkWorkflowURL(in.URL, h.s.Outbound); err != nil {
			h.fail(c, err)
			return
		}
	}
	if in.Secret != nil {
		if err := checkSecret(*in.Secret); err != nil {
			h.fail(c, err)
			return
		}
		w.SecretEnc, w.SecretHint = h.s.Box.Seal(*in.Secret), domain.Hint(*in.Secret)
	}
	if err := h.s.DB.UpdateWorkflow(c.Request.Context(), w); err != nil {
		h.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, workflowBody(w))
}

// deleteWorkflow removes a workflow and its deliveries that were not delivered.
func (h *destHandlers) deleteWorkflow(c *gin.Context) {
	w, err := h.workflowOf(c)
	if err == nil {
		err = h.s.DB.DeleteWorkflow(c.Request.Context(), w.TenantID, w.ID)
	}
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
