package destination

import (
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/outbound"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// WorkflowPrefix begins every workflow id.
const WorkflowPrefix = "wfl_"

// WorkflowUpdate is the body of creating or changing an event-triggered workflow; an absent
// field keeps its value (on creation name, event and url are required).
type WorkflowUpdate struct {
	Name   *string `json:"name"`
	Event  *string `json:"event"`
	URL    *string `json:"url"`
	Secret *string `json:"secret"`
}

// New returns a tenant's new workflow as u describes it, its signing secret sealed with box,
// and the secret itself when Switchboard generated it (shown once). Errors: EINVALID naming the
// field.
func (u *WorkflowUpdate) New(tenantID string, guard *outbound.Guard, box *auth.Box) (w *store.Workflow, generated string, err error) {
	w = &store.Workflow{ID: domain.NewID(WorkflowPrefix), TenantID: tenantID}
	if w.Name, err = domain.CheckName("name", u.Name); err != nil {
		return nil, "", err
	}
	if w.Event, err = checkEvent(u.Event); err != nil {
		return nil, "", err
	}
	if w.URL, err = checkWorkflowURL(u.URL, guard); err != nil {
		return nil, "", err
	}
	secret := ""
	if u.Secret == nil {
		secret = domain.NewSecret("sbw_")
		generated = secret
	} else if err := checkSecret(*u.Secret); err != nil {
		return nil, "", err
	} else {
		secret = *u.Secret
	}
	w.SecretEnc, w.SecretHint = box.Seal(secret), domain.Hint(secret)
	return w, generated, nil
}

// Apply checks u and writes it over w; on an error w may be half changed. Errors: EINVALID
// naming the field.
func (u *WorkflowUpdate) Apply(w *store.Workflow, guard *outbound.Guard, box *auth.Box) error {
	var err error
	if u.Name != nil {
		if w.Name, err = domain.CheckName("name", u.Name); err != nil {
			return err
		}
	}
	if u.Event != nil {
		if w.Event, err = checkEvent(u.Event); err != nil {
			return err
		}
	}
	if u.URL != nil {
		if w.URL, err = checkWorkflowURL(u.URL, guard); err != nil {
			return err
		}
	}
	if u.Secret != nil {
		if err := checkSecret(*u.Secret); err != nil {
			return err
		}
		w.SecretEnc, w.SecretHint = box.Seal(*u.Secret), domain.Hint(*u.Secret)
	}
	return nil
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
