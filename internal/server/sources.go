package server

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/backfill"
	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// SourceConfig is what the SparkPost (direction A) handlers need.
type SourceConfig struct {
	// BatchCommitted is told after a batch is committed (the processor wakes).
	BatchCommitted func()
	// Backfill runs back-fill jobs; nil answers back-fill requests with 503.
	Backfill *backfill.Runner
}

// credentialOverlap is how long old credentials keep working after a rotation (SPEC §4.2).
const credentialOverlap = 24 * time.Hour

// oauthTokenTTL is the lifetime of a bearer token issued to SparkPost.
const oauthTokenTTL = time.Hour

// sparkpostTypes are the event types SparkPost documents; a source's `events` list must name them.
var sparkpostTypes = []string{
	"delivery", "bounce", "out_of_band", "open", "amp_open", "initial_open", "amp_initial_open", "click", "amp_click",
	"spam_complaint", "list_unsubscribe", "link_unsubscribe", "injection", "delay", "policy_rejection",
	"generation_failure", "generation_rejection", "sms_status", "relay_injection", "relay_rejection", "relay_delivery",
	"relay_tempfail", "relay_permfail", "ab_test_completed", "ab_test_cancelled",
}

// sourceRoutes mounts the SparkPost hook, OAuth token endpoint and the source admin routes.
func (s *Server) sourceRoutes(r *gin.Engine, t *gin.RouterGroup) {
	r.POST("/hooks/sparkpost/:sid", s.limitHookMemory, s.sparkpostHook)
	r.POST("/oauth/token", s.oauthToken)

	t.POST("/sources", s.createSource)
	t.GET("/sources", s.listSources)
	t.GET("/sources/:sid", s.getSource)
	t.PATCH("/sources/:sid", s.updateSource)
	t.DELETE("/sources/:sid", s.deleteSource)
	t.POST("/sources/:sid/rotate", s.rotateSource)
	t.GET("/sources/:sid/batches/:batch_id", s.getBatchReceipt)
	t.GET("/email-events", s.listEmailEvents)
	t.GET("/email-events.csv", s.exportEmailEvents)
	t.GET("/retention", s.getRetention)
	t.PUT("/retention", s.putRetention)
	t.POST("/sources/:sid/backfill", s.startBackfill)
	t.GET("/sources/:sid/backfill/:job_id", s.getBackfill)
	t.GET("/backfills", s.listBackfills)
	t.GET("/deliveries", s.listDeliveries)
	t.POST("/deliveries/retry", s.retryDeliveries)
}

// sourceOut is a source as the API shows it.
type sourceOut struct {
	ID                  string    `json:"id"`
	Name                string    `json:"name"`
	WebhookURL          string    `json:"webhook_url"`
	Auth                string    `json:"auth"`
	UserIDKeys          []string  `json:"user_id_keys"`
	AnonymousID         string    `json:"anonymous_id"`
	Events              []string  `json:"events"`
	ForwardInitialOpens bool      `json:"forward_initial_opens"`
	Paused              bool      `json:"paused"`
	Credentials         any       `json:"credentials,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

func (s *Server) sourceBody(src *store.Source, creds any) sourceOut {
	return sourceOut{
		ID: src.ID, Name: src.Name, WebhookURL: s.PublicURL + "/hooks/sparkpost/" + src.ID, Auth: src.Auth,
		UserIDKeys: src.Settings.UserIDKeys, AnonymousID: src.Settings.AnonymousID, Events: src.Settings.Events,
		ForwardInitialOpens: src.Settings.ForwardInitialOpens, Paused: src.Paused, Credentials: creds,
		CreatedAt: src.CreatedAt, UpdatedAt: src.UpdatedAt,
	}
}

// sourceIn is the body of create and update; absent fields keep their value (or default).
type sourceIn struct {
	Name                *string   `json:"name"`
	Auth                *string   `json:"auth"`
	UserIDKeys          *[]string `json:"user_id_keys"`
	AnonymousID         *string   `json:"anonymous_id"`
	Events              *[]string `json:"events"`
	ForwardInitialOpens *bool     `json:"forward_initial_opens"`
	Paused              *bool     `json:"paused"`
}

// apply validates in and writes it over src.
func (in *sourceIn) apply(src *store.Source) error {
	if in.Name != nil || src.Name == "" {
		name, err := checkName("name", in.Name)
		if err != nil {
			return err
		}
		src.Name = name
	}
	if in.UserIDKeys != nil {
		keys := *in.UserIDKeys
		if len(keys) == 0 || len(keys) > 20 {
			return domain.Errorf(domain.EINVALID, "user_id_keys: must list 1 to 20 rcpt_meta keys")
		}
		for _, k := range keys {
			if strings.TrimSpace(k) == "" || len(k) > 200 {
				return domain.Errorf(domain.EINVALID, "user_id_keys: each key must be a non-empty string of at most 200 characters")
			}
		}
		src.Settings.UserIDKeys = keys
	}
	if in.AnonymousID != nil {
		switch *in.AnonymousID {
		case source.AnonymousSHA256Email, source.AnonymousEmail, source.AnonymousSkip:
			src.Settings.AnonymousID = *in.AnonymousID
		default:
			return domain.Errorf(domain.EINVALID, "anonymous_id: must be one of sha256_email, email, skip")
		}
	}
	if in.Events != nil {
		for _, e := range *in.Events {
			if !slices.Contains(sparkpostTypes, e) {
				return domain.Errorf(domain.EINVALID, "events: %q is not a SparkPost event type (one of %s)", e, strings.Join(sparkpostTypes, ", "))
			}
		}
		src.Settings.Events = *in.Events
	}
	if in.ForwardInitialOpens != nil {
		src.Settings.ForwardInitialOpens = *in.ForwardInitialOpens
	}
	if in.Paused != nil {
		src.Paused = *in.Paused
	}
	return nil
}

// newCredentials makes a credential pair for a source's auth kind and returns what the API
// shows once: {username, password} or {client_id, client_secret, token_url}.
func (s *Server) newCredentials(authKind string) (username, secret string, shown any) {
	if authKind == "oauth2" {
		id, secret := domain.NewID("spc_"), domain.NewSecret("sps_")
		return id, secret, gin.H{"client_id": id, "client_secret": secret, "token_url": s.PublicURL + "/oauth/token"}
	}
	user, secret := domain.NewID("spu_"), domain.NewSecret("spp_")
	return user, secret, gin.H{"username": user, "password": secret}
}

func (s *Server) createSource(c *gin.Context) {
	var in sourceIn
	if !s.decode(c, &in) {
		return
	}
	src := &store.Source{ID: domain.NewID("src_"), TenantID: tenantOf(c).ID, Auth: "basic",
		Settings: store.SourceSettings{UserIDKeys: []string{"user_id", "userId"}, AnonymousID: source.AnonymousSHA256Email, Events: []string{}}}
	if in.Auth != nil {
		if *in.Auth != "basic" && *in.Auth != "oauth2" {
			s.fail(c, domain.Errorf(domain.EINVALID, "auth: must be basic or oauth2"))
			return
		}
		src.Auth = *in.Auth
	}
	if err := in.apply(src); err != nil {
		s.fail(c, err)
		return
	}
	user, secret, shown := s.newCredentials(src.Auth)
	if err := s.DB.CreateSource(c.Request.Context(), src, user, auth.HashSecret(secret)); err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusCreated, s.sourceBody(src, shown))
}

func (s *Server) source(c *gin.Context) (*store.Source, bool) {
	src, err := s.DB.Source(c.Request.Context(), tenantOf(c).ID, c.Param("sid"))
	if err != nil {
		s.fail(c, err)
		return nil, false
	}
	return src, true
}

func (s *Server) getSource(c *gin.Context) {
	if src, ok := s.source(c); ok {
		c.PureJSON(http.StatusOK, s.sourceBody(src, nil))
	}
}

func (s *Server) listSources(c *gin.Context) {
	p, err := pageOf(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	srcs, total, err := s.DB.Sources(c.Request.Context(), tenantOf(c).ID, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]sourceOut, len(srcs))
	for i, src := range srcs {
		out[i] = s.sourceBody(src, nil)
	}
	body := ListBody{Results: out, TotalCount: total}
	if n := len(srcs); n > 0 {
		body.Links.Next = nextLink(c, p, n, srcs[n-1].CreatedAt, srcs[n-1].ID)
	}
	c.PureJSON(http.StatusOK, body)
}

func (s *Server) updateSource(c *gin.Context) {
	var in sourceIn
	if !s.decode(c, &in) {
		return
	}
	src, ok := s.source(c)
	if !ok {
		return
	}
	if in.Auth != nil && *in.Auth != src.Auth {
		s.fail(c, domain.Errorf(domain.EINVALID, "auth: cannot be changed; create a new source for another auth kind"))
		return
	}
	wasPaused := src.Paused
	if err := in.apply(src); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.DB.UpdateSource(c.Request.Context(), src); err != nil {
		s.fail(c, err)
		return
	}
	if wasPaused && !src.Paused {
		s.Wake(delivery.TargetSegment, src.TenantID)
	}
	c.PureJSON(http.StatusOK, s.sourceBody(src, nil))
}

func (s *Server) deleteSource(c *gin.Context) {
	if err := s.DB.DeleteSource(c.Request.Context(), tenantOf(c).ID, c.Param("sid")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) rotateSource(c *gin.Context) {
	src, ok := s.source(c)
	if !ok {
		return
	}
	user, secret, shown := s.newCredentials(src.Auth)
	if err := s.DB.RotateSourceCredential(c.Request.Context(), src.TenantID, src.ID, user, auth.HashSecret(secret), credentialOverlap); err != nil {
		s.fail(c, err)
		return
	}
	out := s.sourceBody(src, shown)
	c.PureJSON(http.StatusOK, gin.H{"id": out.ID, "webhook_url": out.WebhookURL, "auth": out.Auth, "credentials": shown,
		"previous_credentials_expire_at": s.DB.Now().Add(credentialOverlap).UTC().Truncate(time.Second)})
}

// receiptOut is a batch receipt as the API shows it: events = duplicates + stored, and stored =
// not_sent + sent + pending + paused + dead. processed_at is absent until the batch is processed.
type receiptOut struct {
	BatchID     string     `json:"batch_id"`
	ReceivedAt  time.Time  `json:"received_at"`
	ProcessedAt *time.Time `json:"processed_at,omitempty"`
	Events      int        `json:"events"`
	Duplicates  int        `json:"duplicates"`
	Stored      int        `json:"stored"`
	NotSent     int        `json:"not_sent"`
	Sent        int        `json:"sent"`
	Pending     int        `json:"pending"`
	Paused      int        `json:"paused"`
	Dead        int        `json:"dead"`
	Error       string     `json:"error,omitempty"`
}

func (s *Server) getBatchReceipt(c *gin.Context) {
	src, ok := s.source(c)
	if !ok {
		return
	}
	r, err := s.DB.Receipt(c.Request.Context(), src.TenantID, src.ID, c.Param("batch_id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	out := receiptOut{
		BatchID: r.BatchID, ReceivedAt: r.ReceivedAt, Events: r.Events, Duplicates: r.Duplicates, Stored: r.Stored,
		NotSent: r.NotSent, Sent: r.Sent, Pending: r.Pending, Paused: r.Paused, Dead: r.Dead, Error: r.Error,
	}
	if !r.ProcessedAt.IsZero() {
		out.ProcessedAt = &r.ProcessedAt
	}
	c.PureJSON(http.StatusOK, out)
}
