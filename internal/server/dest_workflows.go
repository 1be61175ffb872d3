package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/destination"
	"github.com/switchboard-hub/switchboard/internal/domain"
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

func (h *destHandlers) createWorkflow(c *gin.Context) {
	var in destination.WorkflowUpdate
	if !h.s.decode(c, &in) {
		return
	}
	w, generated, err := in.New(tenantOf(c).ID, h.s.Outbound, h.s.Box)
	if err != nil {
		h.fail(c, err)
		return
	}
	if err := h.s.DB.CreateWorkflow(c.Request.Context(), w); err != nil {
		h.fail(c, err)
		return
	}
	out := workflowBody(w)
	out.Secret = generated
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
	if !domain.ValidID(destination.WorkflowPrefix, wid) {
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
	var in destination.WorkflowUpdate
	if !h.s.decode(c, &in) {
		return
	}
	if err := in.Apply(w, h.s.Outbound, h.s.Box); err != nil {
		h.fail(c, err)
		return
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
